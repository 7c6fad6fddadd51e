// Votes on their way to the server. Each carries this tab's client id and a number that grows
// with every vote, and is sent again (after a timeout or a reconnect) until the server answers.
// The server applies each number once and keeps the newest vote per case, so retrying is safe.

function randomId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function stored(key, make) {
  try {
    let value = sessionStorage.getItem(key);
    if (value === null) {
      value = make();
      sessionStorage.setItem(key, value);
    }
    return value;
  } catch {
    return make(); // storage blocked: numbering still grows within this page
  }
}

export class Outbox {
  constructor(sessionId) {
    // Per tab (sessionStorage): two tabs are two clients, a reload keeps the numbering.
    this.client = stored("stackvote:client", randomId);
    this.seqKey = `stackvote:${sessionId}:seq`;
    this.seq = Number(stored(this.seqKey, () => "0")) || 0;
    this.waiting = new Map(); // case id -> the newest unanswered vote for it
  }

  /** A new vote; it replaces any unanswered one on the same case. */
  add(caseId, score, round, reason = "") {
    this.seq += 1;
    try {
      sessionStorage.setItem(this.seqKey, String(this.seq));
    } catch {
      // Kept in memory only.
    }
    const vote = { case: caseId, score, client: this.client, seq: this.seq, round };
    if (reason) vote.reason = reason;
    this.waiting.set(caseId, vote);
    return vote;
  }

  /** Whether `vote` is still the one to deliver (not answered, not replaced by a newer one). */
  isCurrent(vote) {
    return this.waiting.get(vote.case) === vote;
  }

  settle(vote) {
    if (this.isCurrent(vote)) this.waiting.delete(vote.case);
  }

  /** Unanswered votes, oldest first: the order they are sent again after a reconnect. */
  unanswered() {
    return [...this.waiting.values()].sort((a, b) => a.seq - b.seq);
  }
}
