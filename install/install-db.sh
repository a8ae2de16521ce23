#!/usr/bin/env bash
# Install the mi_ tables, procedures, triggers and views into the HIS database,
# then show the least-privilege grant script for the daemon's own login.
#   install/install-db.sh postgresql://dba@his-db/hisdb
# The DBA's password is read from MIBRIDGE_DB_PASSWORD (or typed at the prompt);
# it is never stored. Prefer to read sql/<dialect>/install.sql first, or run it
# yourself with psql / mysql / sqlplus / sqlcmd: this script runs the same file.
set -euo pipefail
url=${1:?usage: install-db.sh DATABASE_URL}
if [ -z "${MIBRIDGE_DB_PASSWORD:-}" ] && [[ "$url" != sqlite:* ]]; then
  read -r -s -p "password for $url: " MIBRIDGE_DB_PASSWORD; echo
  export MIBRIDGE_DB_PASSWORD
fi
mibridge db install --url "$url"
dialect=$(python3 -c 'import sys; from bridge.db.url import parse_url; print(parse_url(sys.argv[1]).dialect)' "$url")
here=$(cd "$(dirname "$0")/.." && pwd)
echo
echo "Next: create the daemon's login with least privilege (DML on the mi_ tables only):"
echo "  $here/sql/$dialect/grants.sql"
