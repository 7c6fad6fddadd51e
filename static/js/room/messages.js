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
 * One short spoken summary of what changed between two snapshots, or "" if nothing worth
 * saying did. `votesText(id)` is the card's "n of m voted".
 */
export function describeChanges(before, after, titleOf, votesText) {
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

  const parts = [];
  if (before.session.status !== "finished" && after.session.status === "finished") {
    parts.push("The session is finished.");
  } else {
    if (opened.length === 1) parts.push(`Voting is open: ${titleOf(opened[0])}.`);
    else if (opened.length > 1) parts.push(`Voting is open on ${opened.length} questions.`);
    if (revealed.length === 1) parts.push(`Scores revealed: ${titleOf(revealed[0])}.`);
    else if (revealed.length > 1) parts.push(`Scores revealed on ${revealed.length} questions.`);
    // Vote counts only when nothing bigger happened, and one at a time.
    if (!opened.length && !revealed.length && counted.length === 1) {
      parts.push(`${titleOf(counted[0])}: ${votesText(counted[0])}.`);
    }
  }
  const verdict = after.recommendation?.verdict;
  if (verdict && verdict !== before.recommendation?.verdict) {
    parts.push(`Recommendation: ${verdict}`);
  }
  return parts.join(" ");
}
