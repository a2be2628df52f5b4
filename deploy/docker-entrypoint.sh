#!/bin/sh
# The gateway image's entrypoint. Started as root (the default), it makes the data directory
# writable for the unprivileged `gateway` user — a bind mount that Docker has just created
# (`-v $PWD/data:/srv/data`) belongs to root — and then runs the command as that user.
# Started as any other user (`docker run --user …`), it runs the command as is.
set -eu
data=${VGW_SERVER__DATA_DIR:-/srv/data}
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$data"
    if [ "$(stat -c %u "$data")" != "$(id -u gateway)" ]; then
        chown -R gateway "$data"
    fi
    # Python rather than setpriv/gosu: present in every Python base image.
    exec python -c '
import os, pwd, sys
user = pwd.getpwnam("gateway")
os.setgroups([])
os.setgid(user.pw_gid)
os.setuid(user.pw_uid)
os.environ["HOME"] = user.pw_dir
os.execvp(sys.argv[1], sys.argv[1:])
' "$@"
fi
exec "$@"
