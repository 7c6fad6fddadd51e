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
