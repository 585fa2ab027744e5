# Sourced by the benchmark scripts that need DynamoDB faster than moto's: starts moto (SQS,
# KMS) on a free loopback port and, unless BENCH_SMOKE is set, Dynoxide (DynamoDB, from
# crates.io, installed once into .tools/) on another; both stop when the script exits.
# Sets moto_port, and AWS_ENDPOINT_URL_DYNAMODB when Dynoxide runs.
py=.venv/bin/python
free_port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

if [ -z "${BENCH_SMOKE:-}" ]; then
  echo "==> installing dynoxide into .tools/ (first run only)" >&2
  cargo install dynoxide-rs --version 3.2.0 --locked --root .tools --quiet >&2
fi
moto_port=$(free_port)
.venv/bin/python scripts/emulator.py -H 127.0.0.1 -p "$moto_port" > /dev/null 2>&1 &
moto=$!
dynamodb=
if [ -z "${BENCH_SMOKE:-}" ]; then
  dynamodb_port=$(free_port)
  .tools/bin/dynoxide --port "$dynamodb_port" --log quiet > /dev/null 2>&1 &
  dynamodb=$!
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port"
fi
trap 'kill $moto $dynamodb 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  "$py" -c "import socket;socket.create_connection(('127.0.0.1',$moto_port),1)" 2>/dev/null && break
  sleep 0.2
done
