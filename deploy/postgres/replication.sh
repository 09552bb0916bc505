#!/bin/bash
# Run once by the postgres image when it initialises the primary's data directory: lets the local
# stack's standby (service postgres-replica) stream WAL from it.
set -euo pipefail
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
