#!/bin/sh
# Like the official image: with no config file, listen on every interface without protected mode.
set -eu
if [ "${1:-}" = redis-server ]; then
  exec "$@" --bind 0.0.0.0 --protected-mode no --dir /data
fi
exec "$@"
