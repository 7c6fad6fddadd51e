// The sessions this browser created or joined, kept in localStorage (no accounts): the landing
// page lists them with a link back.

const KEY = "stackvote:recent";
const MAX = 30;

function read() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((s) => s && typeof s.id === "string") : [];
  } catch {
    return []; // blocked or damaged storage: nothing remembered
  }
}

function write(list) {
  try {
    localStorage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
  } catch {
    // Storage blocked: the list just isn't kept.
  }
}

/** Newest first: [{id, title, role, at}] with `role` "facilitator", "voter" or "spectator". */
export function recentSessions() {
  return read().sort((a, b) => (b.at || 0) - (a.at || 0));
}

/** Note a visit; a facilitator stays recorded as one even after joining again as a voter. */
export function rememberSession({ id, title, role }) {
  const list = read();
  const old = list.find((s) => s.id === id);
  const entry = {
    id,
    title: String(title || old?.title || id).slice(0, 200),
    role: old?.role === "facilitator" ? "facilitator" : role,
    at: Date.now(),
  };
  write([entry, ...list.filter((s) => s.id !== id)]);
}

export function forgetSession(id) {
  write(read().filter((s) => s.id !== id));
}
