
import sys, time, os
from actlab.arena.store import ArenaStore
run_dir, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    pass
with ArenaStore(run_dir) as store:
    store.put({"seed": int(sys.argv[3])}, {"status": "ok"})
