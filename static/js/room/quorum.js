// Who counts in "n of m voted": everyone who scores and is here (or only briefly gone), plus
// anyone who already voted on the question and left.

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

/** {voted, total, missing}: who is counted, and who of them has not voted yet. */
export function tally(people, caseId) {
  const everyone = counted(people, caseId);
  const missing = everyone.filter((p) => !p.voted.includes(caseId));
  return { total: everyone.length, voted: everyone.length - missing.length, missing };
}
