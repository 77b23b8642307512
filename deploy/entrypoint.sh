#!/bin/sh
# The image's entrypoint (see the Dockerfile): started as root, give the data directory (a Fly
# volume, mounted owned by root) to the unprivileged user and become that user; started as
# anyone else, run the command as it is. Nothing of flybot's ever runs as root.
set -eu
user="${FLYBOT_USER:-flybot}"
data="${FLYBOT_DATA_DIR:-/data}"
if [ "$(id -u)" = "0" ]; then
    mkdir -p "$data"
    chown "$user:" "$data"
    exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
fi
exec "$@"
