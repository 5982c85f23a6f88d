#!/usr/bin/env bash
# Install autodrive on a Raspberry Pi running Raspberry Pi OS Bookworm or newer.
#
# Installs the OS packages, makes a virtual environment in which the OS's
# picamera2 is importable, installs autodrive[pi] into it, creates a car folder,
# checks that I2C and the camera are enabled, and with --service installs
# and enables the systemd service. Every step checks what is already done,
# so running the script again is safe. Run it as the user that will drive
# the car; it calls sudo for the steps that need root.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNIT_TEMPLATE="$SCRIPT_DIR/../systemd/autodrive.service"
OS_PACKAGES=(python3-picamera2 python3-venv python3-pip rsync i2c-tools)
DEVICE_GROUPS=(i2c video gpio)

venv="$HOME/autodrive-venv"
car="$HOME/mycar"
source_spec=""
dry_run=0
install_service=0
print_service=0

usage() {
    cat <<EOF
Usage: $(basename "$0") [options]

Install autodrive on a Raspberry Pi (Raspberry Pi OS Bookworm or newer).

Options:
  --venv DIR        virtual environment to create or update (default: $venv)
  --car DIR         car folder to create when missing (default: $car)
  --from SPEC       install autodrive from a local folder, wheel file or URL
                    instead of PyPI (the [pi] extra is added)
  --service         install and enable the systemd service for this user,
                    virtual environment and car folder
  --print-service   print the systemd unit that --service would install, then exit
  --dry-run         print every step without running it (works on any machine)
  -h, --help        show this help
EOF
}

die() {
    echo "install-pi.sh: $*" >&2
    exit 1
}

warn() {
    echo "WARNING: $*" >&2
}

step() {
    echo
    echo "==> $*"
}

# Run a command, or in a dry run print it with shell quoting.
run() {
    if [ "$dry_run" -eq 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --venv) [ $# -ge 2 ] || die "--venv needs a folder"; venv="$2"; shift 2 ;;
        --car) [ $# -ge 2 ] || die "--car needs a folder"; car="$2"; shift 2 ;;
        --from) [ $# -ge 2 ] || die "--from needs a folder, wheel file or URL"; source_spec="$2"; shift 2 ;;
        --service) install_service=1; shift ;;
        --print-service) print_service=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done

user="$(id -un)"

# systemd reads these paths unquoted, and sed below uses '|' as its separator.
for path in "$venv" "$car"; do
    case "$path" in
        /*) ;;
        *) die "'$path' is not an absolute path; give --venv and --car as absolute paths" ;;
    esac
    case "$path" in
        *[[:space:]\|\&\\%]*) die "'$path' contains a space or one of | & \\ %; choose a simpler path" ;;
    esac
done

render_unit() {
    [ -f "$UNIT_TEMPLATE" ] || die "$UNIT_TEMPLATE not found; run this script from an autodrive checkout"
    sed -e "s|^User=pi\$|User=$user|" \
        -e "s|/home/pi/autodrive-venv|$venv|g" \
        -e "s|/home/pi/mycar|$car|g" \
        "$UNIT_TEMPLATE"
}

if [ "$print_service" -eq 1 ]; then
    render_unit
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && [ "$dry_run" -eq 0 ]; then
    die "run this script as the user that drives the car, not as root; it calls sudo where needed"
fi

if [ -z "$source_spec" ]; then
    package_spec="autodrive[pi]"
elif [[ "$source_spec" == *://* ]]; then
    package_spec="autodrive[pi] @ $source_spec"
else
    package_spec="${source_spec}[pi]"
fi

step "Checking the operating system"
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    echo "found ${PRETTY_NAME:-an unknown system}"
    if [ "${VERSION_ID:-0}" -lt 12 ] 2>/dev/null; then
        warn "this is older than Debian 12 (Bookworm); python3-picamera2 may be missing, so upgrade Raspberry Pi OS first"
    fi
else
    warn "/etc/os-release not found; this does not look like Raspberry Pi OS"
fi
if [ ! -r /proc/device-tree/model ] || ! grep -qa "Raspberry Pi" /proc/device-tree/model; then
    warn "this machine is not a Raspberry Pi; the camera and I2C checks below will fail"
fi

step "Installing OS packages: ${OS_PACKAGES[*]}"
missing=()
for package in "${OS_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "all installed"
else
    run sudo apt-get update
    run sudo apt-get install -y "${missing[@]}"
fi

step "Creating the virtual environment $venv (with the OS's packages visible, for picamera2)"
if [ -f "$venv/pyvenv.cfg" ]; then
    if ! grep -q "^include-system-site-packages = true" "$venv/pyvenv.cfg"; then
        die "$venv exists but cannot see the OS's picamera2; remove it (rm -r $venv) and run this script again"
    fi
    echo "already exists"
else
    run python3 -m venv --system-site-packages "$venv"
fi

step "Installing $package_spec"
run "$venv/bin/python" -m pip install --upgrade "$package_spec"

step "Giving $user access to I2C, the camera and GPIO (groups: ${DEVICE_GROUPS[*]})"
relogin=0
for group in "${DEVICE_GROUPS[@]}"; do
    if ! getent group "$group" >/dev/null; then
        warn "group $group does not exist on this system"
    elif id -nG "$user" | tr ' ' '\n' | grep -qx "$group"; then
        echo "already in $group"
    else
        run sudo usermod -aG "$group" "$user"
        relogin=1
    fi
done

step "Creating the car folder $car"
if [ -f "$car/myconfig.yaml" ]; then
    echo "already exists"
else
    run "$venv/bin/autodrive" createcar "$car"
fi

step "Checking that I2C is enabled (the PCA9685 board is on /dev/i2c-1)"
if [ "$dry_run" -eq 1 ]; then
    echo "+ test -e /dev/i2c-1"
elif [ -e /dev/i2c-1 ]; then
    echo "found /dev/i2c-1; list the boards on it with: i2cdetect -y 1 (a PCA9685 answers at 40)"
else
    warn "/dev/i2c-1 not found: enable I2C with 'sudo raspi-config nonint do_i2c 0' and reboot"
fi

step "Checking that the camera is detected"
camera_tool=""
for tool in rpicam-hello libcamera-hello; do
    if command -v "$tool" >/dev/null; then
        camera_tool="$tool"
        break
    fi
done
if [ "$dry_run" -eq 1 ]; then
    echo "+ ${camera_tool:-rpicam-hello} --list-cameras"
elif [ -z "$camera_tool" ]; then
    warn "neither rpicam-hello nor libcamera-hello is installed (sudo apt install rpicam-apps); cannot check the camera"
elif cameras="$("$camera_tool" --list-cameras 2>&1)" && grep -q "Available cameras" <<<"$cameras"; then
    echo "$cameras"
else
    warn "no camera found: check the ribbon cable and that camera_auto_detect=1 is in /boot/firmware/config.txt, then reboot"
fi

if [ "$install_service" -eq 1 ]; then
    step "Installing and enabling the systemd service autodrive"
    if [ "$dry_run" -eq 1 ]; then
        echo "+ render $UNIT_TEMPLATE with User=$user, $venv and $car"
        run sudo install -m 644 /dev/stdin /etc/systemd/system/autodrive.service
    else
        render_unit | sudo install -m 644 /dev/stdin /etc/systemd/system/autodrive.service
    fi
    run sudo systemctl daemon-reload
    run sudo systemctl enable autodrive
fi

step "Done. Next:"
if [ "$relogin" -eq 1 ]; then
    echo "  log out and back in (or reboot) so the new groups apply"
fi
echo "  source $venv/bin/activate"
echo "  cd $car && autodrive calibrate      # find the steering and throttle pulse widths"
echo "  autodrive drive                      # then open the printed URL on your phone"
if [ "$install_service" -eq 1 ]; then
    echo "  sudo systemctl start autodrive       # or reboot: it starts at boot from now on"
    echo "  journalctl -u autodrive -f           # follow its log"
else
    echo "  $0 --service                         # to start autodrive at boot"
fi
