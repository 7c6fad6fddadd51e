// What the room tells people outside the cards: error toasts and screen-reader announcements.

const TOAST_MS = 6000;

export class Messages {
  constructor(toastNode, announcerNode) {
    this.toastNode = toastNode;
    this.announcerNode = announcerNode;
    this.timer = 0;
  }

  /** A visible message (role="alert"); kind "error" or "info". */
  toast(message, kind = "error") {
    clearTimeout(this.timer);
    this.toastNode.dataset.kind = kind;
    this.toastNode.textContent = message;
    this.timer = setTimeout(() => {
      this.toastNode.textContent = "";
    }, TOAST_MS);
  }

  /** Spoken only (polite live region). */
  announce(message) {
    // Clearing first makes a repeated message announce again.
    this.announcerNode.textContent = "";
    requestAnimationFrame(() => {
      this.announcerNode.textContent = message;
    });
  }
}

/**
 * What happened to the questions between two snapshots: the ids of those that opened (or
 * started a new round), of those whose voting ended (revealed, locked), and of those still
 * being voted on whose count of votes moved.
 */
export function caseChanges(before, after) {
  const old = new Map(before.cases.map((c) => [c.id, c]));
  const opened = [];
  const revealed = [];
  const counted = [];
  for (const c of after.cases) {
    const was = old.get(c.id);
    if (!was) continue;
    if (was.status !== c.status || was.round !== c.round) {
      if (c.status === "voting") opened.push(c.id);
      else if (was.status === "voting") revealed.push(c.id);
    } else if (c.status === "voting" && was.votes_in !== c.votes_in) {
      counted.push(c.id);
    }
  }
  return { opened, revealed, counted };
}

/**
 * The milestones between two snapshots, as sentences to speak: the session finished, or
 * questions opened and were revealed. Never a single vote.
 */
export function milestones(before, after, titleOf, changes = caseChanges(before, after)) {
  if (before.session.status !== "finished" && after.session.status === "finished") {
    return ["The session is finished."];
  }
  const { opened, revealed } = changes;
  const parts = [];
  if (opened.length === 1) parts.push(`Voting is open: ${titleOf(opened[0])}.`);
  else if (opened.length > 1) parts.push(`Voting is open on ${opened.length} questions.`);
  if (revealed.length === 1) parts.push(`Scores revealed: ${titleOf(revealed[0])}.`);
  else if (revealed.length > 1) parts.push(`Scores revealed on ${revealed.length} questions.`);
  return parts;
}

/**
 * One short spoken summary of what changed between two snapshots, or "" if nothing worth
 * saying did. `votesText(id)` is the card's "n of m voted".
 */
export function describeChanges(before, after, titleOf, votesText) {
  const changes = caseChanges(before, after);
  const parts = milestones(before, after, titleOf, changes);
  // Vote counts only when nothing bigger happened, and one at a time.
  const { counted } = changes;
  if (!parts.length && counted.length === 1) {
    parts.push(`${titleOf(counted[0])}: ${votesText(counted[0])}.`);
  }
  const verdict = after.recommendation?.verdict;
  if (verdict && verdict !== before.recommendation?.verdict) {
    parts.push(`Recommendation: ${verdict}`);
  }
  return parts.join(" ");
}
