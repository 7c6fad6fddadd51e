// Who counts in "n of m voted": everyone who scores and is here (or only briefly gone), plus
// anyone who already voted on the question and left.

// An anonymous session shows a question's scores only once at least this many people have
// scored it (skips don't count): the server's rule (server/models.py MIN_CROWD), which the
// page carries as data-min-crowd (3 if a page does not say).
const crowdHolder = document.querySelector("[data-min-crowd]");
export const MIN_CROWD = Number(crowdHolder?.dataset.minCrowd) || 3;

/** Whether a participant counts as present: not away (or, from an older server, online). */
export function present(p) {
  return "away" in p ? !p.away : p.online;
}

/** The people counted for `caseId`. */
export function counted(people, caseId) {
  return people.filter(
    (p) => p.role !== "spectator" && (present(p) || p.voted.includes(caseId)),
  );
}

/**
 * {voted, total, missing}: how many of those counted have voted on the case `state`, and who
 * of them has not yet. In an anonymous session nobody is told who voted (everyone's `voted`
 * is empty): `voted` is the case's `votes_in`, `total` never below it (people who voted and
 * left count, but can't be told apart), and `missing` is null.
 */
export function tally(people, state, anonymous = false) {
  const everyone = counted(people, state.id);
  if (anonymous) {
    const voted = state.votes_in;
    return { total: Math.max(everyone.length, voted), voted, missing: null };
  }
  const missing = everyone.filter((p) => !p.voted.includes(state.id));
  return { total: everyone.length, voted: everyone.length - missing.length, missing };
}
