#!/usr/bin/env bash
# The first real deployment on one host, from an empty data directory, with the xiezhu CLI and
# curl only (no demo code): keys and NATS authorization, the embedded nats-server, provisioning,
# the ledger and the agents of 区审批服务局 (shenpi) and 区公安分局 (gongan) as separate processes,
# gongan's 户籍 records, the catalogues applied, reviewed and published, a commitment case with its
# 协助函 sent by `xiezhu request`, a second request filed over the HTTP API with a token, both
# answered by gongan's agent from its records.  The last output is `xiezhu sla --json`.  It stops
# everything it started, and exits 0 only if both requests were answered.
#
#   examples/one-host.sh                    # a fresh directory under /tmp
#   XIEZHU_DATA_DIR=/srv/xiezhu examples/one-host.sh
#
# Settings (environment): XIEZHU (the command, default `xiezhu`), XIEZHU_DATA_DIR (must be empty or
# absent), NATS_PORT (4222), HTTP_PORT (8080), WAIT_SECONDS (120).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
read -r -a XZ <<<"${XIEZHU:-xiezhu}"
DATA="${XIEZHU_DATA_DIR:-$(mktemp -d /tmp/xiezhu-one-host.XXXXXX)/data}"
NATS_PORT="${NATS_PORT:-4222}"
HTTP_PORT="${HTTP_PORT:-8080}"
WAIT_SECONDS="${WAIT_SECONDS:-120}"
NATS="nats://127.0.0.1:${NATS_PORT}"
API="http://127.0.0.1:${HTTP_PORT}"
export XIEZHU_DATA_DIR="$DATA"
export XIEZHU_OPERATOR="${XIEZHU_OPERATOR:-one-host}"

if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
    echo "error: $DATA is not empty; this script starts from an empty data directory" >&2
    exit 1
fi
mkdir -p "$DATA/logs"
say() { printf '\n== %s\n' "$*" >&2; }
xz() { "${XZ[@]}" "$@"; }

PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
start() {  # start NAME ARGS…: a long-running xiezhu process, its log in $DATA/logs/NAME.log
    local name="$1"; shift
    "${XZ[@]}" "$@" >"$DATA/logs/$name.log" 2>&1 &
    PIDS+=("$!")
}
wait_for() {  # wait_for WHAT COMMAND…: until COMMAND succeeds, at most WAIT_SECONDS
    local what="$1"; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: $what did not happen within ${WAIT_SECONDS}s; logs in $DATA/logs" >&2
            tail -n 20 "$DATA"/logs/*.log >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

say "1. keys: a signing and box key per bureau, the root key, the signed trust list; NATS users"
xz keys init
xz nats-config --out "$DATA/nats-authorization.conf"

say "2. the embedded nats-server (JetStream, one NKey user per bureau) on port $NATS_PORT"
start nats-server nats-server --port "$NATS_PORT"
wait_for "nats-server" port_open "$NATS_PORT"

say "3. streams and every bureau's durable consumer"
xz --nats-url "$NATS" provision

say "4. the ledger (区司法局) and the agents of shenpi and gongan, each its own process"
start ledger --nats-url "$NATS" ledger
start agent-shenpi --nats-url "$NATS" agent --bureau shenpi
start agent-gongan --nats-url "$NATS" agent --bureau gongan

say "5. gongan's 户籍 records, which its verifier answers from"
xz records load --bureau gongan "$HERE/gongan-residents.csv"

say "6. the catalogues: shenpi applies (附件8, 附件9), 区司法局 reviews; 区政府 publishes 附件8, 区司法局 附件9"
BASIS="《台儿庄区全面推行证明事项告知承诺制工作实施方案》一(三)"
for kind in matters assistance; do
    adjustment="$(xz catalogue apply --kind "$kind" --bureau shenpi --basis "$BASIS" \
        "$HERE/shenpi-$kind.csv" 2>&1 | grep -o "^$kind-[0-9]*")"
    xz catalogue review "$adjustment" --approve
done
xz government publish                  # 一(三): 区政府 (signed by 区政府办公室) publishes the 证明事项清单
xz catalogue publish --kind assistance # 第七条: 区政府授权区司法局发布本区行政协助目录

say "7. a commitment case at shenpi, and its 协助函 to gongan with \`xiezhu request\`"
CASE="$(xz case open --bureau shenpi --matter ZM-shenpi-0001 \
    --applicant-name 张三 --applicant-id 370405199001011234 \
    --item "本人户籍所在地为山东省枣庄市台儿庄区运河街道|hukou.residence|address=运河街道" \
    --item "本人无犯罪记录|police.no-criminal-record")"
xz case notice "$CASE" --bureau shenpi
xz case commit "$CASE" --bureau shenpi
xz case plan "$CASE" --bureau shenpi --item 1=assistance:XZ-shenpi-0001 --item 2=assistance:XZ-shenpi-0001
FIRST="$(xz request --bureau shenpi --to gongan --catalogue-item XZ-shenpi-0001 --case "$CASE")"

say "8. shenpi's 审批 system files a second request over the HTTP API, with its token"
TOKEN="$(xz tokens create --bureau shenpi --label 审批系统)"
start serve serve --bureau shenpi --port "$HTTP_PORT"
wait_for "xiezhu serve" curl -sf "$API/openapi.json"
curl -sf -X POST "$API/v1/bureaus/shenpi/requests" \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    --data-binary @- <<'JSON' >"$DATA/logs/second-request.json"
{"assistor": "gongan", "catalogue_item": "XZ-shenpi-0001",
 "applicant": {"kind": "person", "name": "李四", "id_number": "370405198805052345"},
 "matter": {"code": "370405-XK-0101", "name": "食品经营许可"}, "applied_on": "2026-09-21",
 "items": [{"no": 1, "text": "本人户籍所在地为泥沟镇", "check": "hukou.residence", "facts": {"address": "泥沟镇"}},
           {"no": 2, "text": "本人无犯罪记录", "check": "police.no-criminal-record"}]}
JSON
SECOND="$(grep -o '"number":"[0-9]*"' "$DATA/logs/second-request.json" | grep -o '[0-9]\{8\}')"
echo "requests $FIRST (CLI) and $SECOND (HTTP API) sent" >&2

say "9. waiting until gongan's agent has answered both"
both_replied() {
    local replied
    replied="$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/bureaus/shenpi/requests?status=replied")"
    grep -q "\"number\":\"$FIRST\"" <<<"$replied" && grep -q "\"number\":\"$SECOND\"" <<<"$replied"
}
wait_for "both replies" both_replied
sla_has_both() { [ "$(xz sla --json --state answered-on-time | grep -o '"status": *"replied"' | wc -l)" -ge 2 ]; }
wait_for "the SLA view" sla_has_both
xz outbox
xz case approve "$CASE" --bureau shenpi --decision-no "台审批许〔2026〕1号"   # both items came back true
xz case conclude "$CASE" --bureau shenpi
curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/bureaus/shenpi/notices" >"$DATA/logs/notices.json"
xz case show "$CASE" --bureau shenpi --json >"$DATA/logs/case.json"

say "10. the SLA view"
xz sla --json
