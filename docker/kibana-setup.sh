#!/usr/bin/env bash
# One-shot of the compose stack: import the Kibana saved objects (conf/kibana/*.ndjson,
# mounted at /saved-objects) into Kibana, replacing earlier versions of them.
# All files go in one request, so references between files resolve whatever their order.
set -euo pipefail
KIBANA_URL="${KIBANA_URL:-http://kibana:5601}"
SAVED_OBJECTS="${SAVED_OBJECTS:-/saved-objects}"

until curl -fs "$KIBANA_URL/api/status" >/dev/null; do
  echo "waiting for Kibana at $KIBANA_URL ..."
  sleep 5
done

bundle=$(mktemp --suffix=.ndjson)
cat "$SAVED_OBJECTS"/*.ndjson >"$bundle"
echo "importing $(grep -c . "$bundle") saved objects from $SAVED_OBJECTS"
response=$(curl -fsS -X POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
  -H 'kbn-xsrf: true' --form "file=@$bundle")
echo "$response"
# HTTP 200 also carries per-object errors: only "success":true means every object went in
grep -q '"success":true' <<<"$response"
