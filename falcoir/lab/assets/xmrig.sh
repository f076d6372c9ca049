#!/bin/bash
# xmrig, the falcoir lab's harmless stand-in (script fallback when no C compiler is
# available). Same protocol as xmrig.c through bash's /dev/tcp; comm is still "xmrig".
url="" user="x" pass="x"
while getopts "o:u:p:k" opt; do
  case "$opt" in o) url=$OPTARG ;; u) user=$OPTARG ;; p) pass=$OPTARG ;; *) ;; esac
done
url=${url#stratum+tcp://}
host=${url%:*} port=${url##*:}
trap 'exit 0' TERM INT
id=1
while :; do
  if exec 3<>"/dev/tcp/$host/$port"; then
    echo "[$(date -u '+%F %T')] [$host:$port] connected"
    printf '{"id":%d,"jsonrpc":"2.0","method":"login","params":{"login":"%s","pass":"%s","agent":"XMRig/6.21.0 (falcoir-lab)"}}\n' "$id" "$user" "$pass" >&3 || true
    while printf '{"id":%d,"jsonrpc":"2.0","method":"keepalived","params":{"id":"lab"}}\n' "$((id += 1))" >&3; do
      while read -r -t 0.05 -u 3 _; do :; done
      sleep 0.5
    done
    exec 3>&-
  fi
  echo "[$(date -u '+%F %T')] [$host:$port] connect error, retrying"
  sleep 1
done
