// My own ballots as the server confirmed them, kept in step with each snapshot.

export class MyBallots {
  constructor() {
    this.scores = new Map(); // case id -> score, null = skipped
    this.since = new Map(); // case id -> first snapshot version that holds the ballot
    this.rounds = new Map(); // case id -> round last seen
    this.pending = new Set(); // case ids with a vote on its way
    this.choosing = new Map(); // case id -> the score on its way (shown pressed meanwhile)
    this.reasons = new Map(); // case id -> the reason the server holds with my ballot
  }

  has(caseId) {
    return this.scores.has(caseId);
  }

  get(caseId) {
    return this.scores.get(caseId);
  }

  /** From `welcome`: my ballots in the current rounds, so a reload keeps my choices. */
  restore(ballots, reasons) {
    this.scores.clear();
    this.since.clear();
    this.reasons.clear();
    for (const [caseId, score] of Object.entries(ballots || {})) {
      this.scores.set(caseId, score);
      this.since.set(caseId, 0);
    }
    for (const [caseId, text] of Object.entries(reasons || {})) {
      if (typeof text === "string") this.reasons.set(caseId, text);
    }
  }

  /** The server acknowledged my vote (and the reason sent with it) in snapshot `version`. */
  confirm(caseId, score, reason, version) {
    this.scores.set(caseId, score);
    this.since.set(caseId, version);
    if (reason) this.reasons.set(caseId, reason);
    else this.reasons.delete(caseId);
  }

  /**
   * Forget choices the server no longer holds: a new round started, or my id is missing from
   * the case's voters in a snapshot at least as new as my ballot. An anonymous session tells
   * nobody who voted, me neither, so there only a new round drops my ballots.
   */
  reconcile(snapshot, myId) {
    const anonymous = Boolean(snapshot.session?.anonymous);
    const self = snapshot.participants.find((p) => p.id === myId);
    const voted = new Set(self ? self.voted : []);
    for (const c of snapshot.cases) {
      const seen = this.rounds.get(c.id);
      this.rounds.set(c.id, c.round);
      if (seen !== undefined && c.round > seen) {
        this.scores.delete(c.id);
        this.reasons.delete(c.id);
        continue;
      }
      const since = this.since.get(c.id) ?? 0;
      if (anonymous) continue;
      if (this.scores.has(c.id) && !voted.has(c.id) && snapshot.version >= since) {
        this.scores.delete(c.id);
        this.reasons.delete(c.id);
      }
    }
  }
}
