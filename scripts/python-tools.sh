#!/usr/bin/env bash
# Makes sure the Python tools the tests run are installed, pinned, in one venv outside the
# clone ($LABS_CI_CACHE/venv): schemathesis (API fuzzing), aiosmtpd (a real SMTP server) and
# pyotp (an independent TOTP implementation). Prints the venv's python path.
set -euo pipefail
cache=${LABS_CI_CACHE:-/var/cache/labs-ci}
venv="$cache/venv"
wanted=(schemathesis==4.32.5 aiosmtpd==1.4.6 pyotp==2.9.0)
installed=$("$venv/bin/pip" freeze 2>/dev/null || true)
missing=false
for package in "${wanted[@]}"; do
  grep -qixF "$package" <<<"$installed" || missing=true
done
if $missing; then
  echo "[python-tools] installing ${wanted[*]} into $venv" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "${wanted[@]}" >&2
fi
echo "$venv/bin/python"
