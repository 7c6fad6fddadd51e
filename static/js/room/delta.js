// Deltas (SPEC §5): what changed since version `base`, applied to the snapshot on screen.

/**
 * The snapshot after `delta`, or null if the delta does not follow from `snapshot` (its base
 * is another version): then only a fresh snapshot will do.
 */
export function applyDelta(snapshot, delta) {
  if (!snapshot || delta.base !== snapshot.version) return null;
  const next = { ...snapshot, version: delta.version };
  if ("session" in delta) next.session = delta.session;
  if ("recommendation" in delta) next.recommendation = delta.recommendation;
  if (delta.participants || delta.gone) {
    const gone = new Set(delta.gone || []);
    const changed = new Map((delta.participants || []).map((p) => [p.id, p]));
    const kept = [];
    for (const p of snapshot.participants) {
      if (gone.has(p.id)) continue;
      kept.push(changed.get(p.id) ?? p);
      changed.delete(p.id);
    }
    next.participants = kept.concat([...changed.values()]);
  }
  if (delta.cases) {
    const changed = new Map(delta.cases.map((c) => [c.id, c]));
    next.cases = snapshot.cases.map((c) => changed.get(c.id) ?? c);
  }
  return next;
}

/**
 * Keeps a page's copy of the session in step with the server: takes snapshots newer than the
 * one on screen, applies deltas that follow from it, and after a gap asks for a snapshot
 * (`sync`). `onSnapshot(snapshot, previous)` runs for each newer snapshot.
 */
export class Follower {
  constructor(socketOf, timeoutMs, onSnapshot) {
    this.socketOf = socketOf;
    this.timeoutMs = timeoutMs;
    this.onSnapshot = onSnapshot;
    this.snapshot = null;
    this.version = -1;
    this.syncing = false;
  }

  /**
   * Follow the session on `socket`: its snapshots and deltas, and a fresh snapshot once its
   * server's storage is back (`status`), telling `setConnection` how the link stands.
   */
  listen(socket, setConnection) {
    socket.on("state", (snapshot) => this.take(snapshot));
    socket.on("delta", (delta) => this.delta(delta));
    socket.on("status", (status) => {
      if (status && status.storage === "unavailable") {
        setConnection("storage");
      } else if (socket.connected) {
        setConnection("connected");
        this.resync();
      }
    });
  }

  take(snapshot) {
    if (!snapshot || typeof snapshot.version !== "number") return;
    if (snapshot.version <= this.version) return; // older than what is on screen
    this.show(snapshot);
  }

  show(snapshot) {
    const previous = this.snapshot;
    this.snapshot = snapshot;
    this.version = snapshot.version;
    this.onSnapshot(snapshot, previous);
  }

  delta(delta) {
    if (!delta || typeof delta.version !== "number" || !this.snapshot) return;
    if (delta.base !== this.version) {
      // A change was missed (an older delta is just late: nothing to do).
      if (delta.version > this.version) this.resync();
      return;
    }
    // A delta may keep the version: it brings what the server worked out since (the
    // recommendation comes a moment after the reveal it follows).
    const next = applyDelta(this.snapshot, delta);
    if (next) this.show(next);
  }

  resync() {
    const socket = this.socketOf();
    if (!socket || !socket.connected || this.syncing) return;
    this.syncing = true;
    socket.timeout(this.timeoutMs).emit("sync", (err, snapshot) => {
      this.syncing = false;
      if (err) return;
      if (snapshot && snapshot.ok === false && snapshot.retry) {
        // The server is busy or this page asked too often: ask again in a moment.
        setTimeout(() => this.resync(), 1000 + Math.random() * 2000);
        return;
      }
      this.take(snapshot);
    });
  }
}
