#!/bin/sh
# serve.sh — what `make run` starts: the guided demo (scripts/demo.sh), then `kdelta serve`
# on the default database (~/.korudelta/db, or $KORU_DB), in the foreground until Ctrl-C.
# Usage: scripts/serve.sh path/to/kdelta     (KORU_PORT picks the port; default 8080)
set -u
KDELTA=${1:-build/kdelta}
PORT=${KORU_PORT:-8080}
"$(dirname "$0")/demo.sh" "$KDELTA" || exit 1
URL="http://127.0.0.1:$PORT"
cat <<EOF

Starting the HTTP server: $KDELTA serve --port $PORT   (Ctrl-C stops it cleanly)
Try these from another terminal:
  curl -s -X PUT $URL/api/v1/users/alice -H 'Content-Type: application/json' -d '{"value":{"age":30}}'
  curl -s $URL/api/v1/users/alice
  curl -s $URL/api/v1/users/alice/_history
  curl -s -X POST $URL/api/v1/users/_query -H 'Content-Type: application/json' -d '{"filter":"age > 18"}'
  curl -s -N "$URL/api/v1/_changes?since=now"          # live change feed (SSE)
  $KDELTA --url $URL get users/alice
  $KDELTA get users/alice        # reaches the running server by itself
  $KDELTA watch users            # print changes as they happen
  curl -s $URL/metrics
EOF
exec "$KDELTA" serve --port "$PORT"
