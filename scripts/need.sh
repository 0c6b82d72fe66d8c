# Sourced by the benchmark scripts: `need PACKAGE COMMAND` installs the Debian package PACKAGE
# with apt-get (as root) when COMMAND is missing, or stops with an error saying how to.
need() {
    command -v "$2" > /dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "==> installing $1 (apt-get install -y $1)"
        apt-get install -y "$1" > /dev/null || { apt-get update > /dev/null && apt-get install -y "$1" > /dev/null; }
    else
        echo "error: $2 is missing: install it (Debian/Ubuntu: sudo apt-get install $1)" >&2
        exit 2
    fi
}
