#!/usr/bin/env bash
# Backups of the compose stack's PostgreSQL (docker-compose.yml): every database with pg_dump's custom format,
# and a restore. Run from anywhere; docs/operations/backup-and-restore.md has the routine and the drill.
#   deploy/compose/backup.sh dump [DIR]            # DIR (default backups/) gets <db>-<UTC time>.dump per database,
#                                                  #   plus globals-<UTC time>.sql (roles)
#   deploy/compose/backup.sh restore FILE [DB]     # FILE into DB (default: the database it was dumped from);
#                                                  #   DB is created when missing, else its objects are replaced
#   deploy/compose/backup.sh list FILE             # what a dump holds (pg_restore --list)
# The client tools run inside the compose service `postgres` while it runs (`docker compose exec`: the server's
# own release, so versions always match), otherwise on this machine against PGHOST:PGPORT (default
# 127.0.0.1:5432, user/password sandan/sandan: compose's published, local-only values). SANDAN_BACKUP_VIA=compose
# or host chooses explicitly; SANDAN_BACKUP_DATABASES="a b" limits `dump` to those databases.
# Stop the services before a restore into their database (`docker compose stop intake dispatch scoring notify
# gateway`): they would write while it is replaced. Scoring needs no restore of its own: it rebuilds from Kafka.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-sandan}"
export PGPASSWORD="${PGPASSWORD:-sandan}"

via="${SANDAN_BACKUP_VIA:-}"
if [ -z "$via" ]; then
  via=host
  if command -v docker >/dev/null 2>&1 \
     && [ -n "$(docker compose -f "$ROOT/docker-compose.yml" ps -q postgres 2>/dev/null)" ]; then
    via=compose
  fi
fi

# A PostgreSQL client tool, where the server is; stdin and stdout pass through (dumps are binary).
pg() {
  if [ "$via" = compose ]; then
    docker compose -f "$ROOT/docker-compose.yml" exec -T -e PGPASSWORD="$PGPASSWORD" postgres "$@" -U "$PGUSER"
  else
    "$@" -h "$PGHOST" -p "$PGPORT" -U "$PGUSER"
  fi
}

stamp() { date -u +%Y%m%dT%H%M%SZ; }

dump() {
  local dir="${1:-backups}" when databases db
  mkdir -p "$dir"
  when="$(stamp)"
  databases="${SANDAN_BACKUP_DATABASES:-$(pg psql -d postgres -XAtc \
    "select datname from pg_database where not datistemplate and datname <> 'postgres' order by 1")}"
  pg pg_dumpall --globals-only --no-role-passwords >"$dir/globals-$when.sql"
  for db in $databases; do
    # custom format: compressed, restorable table by table, checked by pg_restore --list below
    pg pg_dump -d "$db" -Fc >"$dir/$db-$when.dump.partial"
    mv "$dir/$db-$when.dump.partial" "$dir/$db-$when.dump"
    pg pg_restore --list <"$dir/$db-$when.dump" >/dev/null
    echo "backup: $dir/$db-$when.dump ($(du -h "$dir/$db-$when.dump" | cut -f1))" >&2
  done
}

restore() {
  local file="$1" db="${2:-}"
  [ -f "$file" ] || { echo "backup: no such dump: $file" >&2; exit 2; }
  if [ -z "$db" ]; then
    db="$(pg pg_restore --list <"$file" | sed -n 's/^;[[:space:]]*dbname: //p' | head -1)"
  fi
  if [ "$(pg psql -d postgres -XAtc "select 1 from pg_database where datname = '$db'")" != 1 ]; then
    pg createdb "$db"
  fi
  # --clean --if-exists: the dump's objects replace what is there; --no-owner: owned by the restoring role
  pg pg_restore -d "$db" --clean --if-exists --no-owner --exit-on-error <"$file"
  echo "backup: restored $file into database $db" >&2
}

case "${1:-}" in
  dump) shift; dump "$@" ;;
  restore) shift; [ $# -ge 1 ] || { echo "usage: $0 restore FILE [DB]" >&2; exit 2; }; restore "$@" ;;
  list) shift; pg pg_restore --list <"$1" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
