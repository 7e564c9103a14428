# Helpers shared by the benchmark scripts (sourced, not run).

# A free port whose +10000 twin (SeaweedFS's gRPC port) is free too, both below
# Linux's ephemeral range (32768+) where outgoing connections could take them.
free_port() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randrange(10000, 22000)
    if free(p) and free(p + 10000):
        print(p); break
PY
}
wait_http() { # url, what
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.2
  done
  echo "bench: $2 did not come up at $1" >&2; exit 1
}
rand_hex() { python3 -c 'import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
