// "K of M voted", the twin of the server's Session.tally (server/models.py): K is every ballot
// of the question's round (skips too, and those of people who left, which stay counted); M adds
// everyone here who votes and has not voted yet, so K never exceeds M.

// An anonymous session shows a question's scores only once at least this many people have
// scored it (skips don't count): the server's rule (server/models.py MIN_CROWD), which the
// page carries as data-min-crowd (3 if a page does not say).
const crowdHolder = document.querySelector("[data-min-crowd]");
export const MIN_CROWD = Number(crowdHolder?.dataset.minCrowd) || 3;

/** Whether the room waits for a participant: not away (or, from an older server, online). */
export function here(p) {
  return "away" in p ? !p.away : p.online;
}

/**
 * {voted, total, missing} for the case `state`: `missing` lists who is here, votes and has not
 * voted. In an anonymous session nobody is told who voted (everyone's `voted` is empty):
 * `total` is what everyone can count, the people here who vote or `voted` if that is more,
 * and `missing` is null.
 */
export function tally(people, state, anonymous = false) {
  const voted = state.votes_in;
  const voters = people.filter((p) => p.role !== "spectator" && here(p));
  if (anonymous) return { voted, total: Math.max(voted, voters.length), missing: null };
  const missing = voters.filter((p) => !p.voted.includes(state.id));
  return { voted, total: voted + missing.length, missing };
}
