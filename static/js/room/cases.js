// Case cards: the server renders their skeleton; this keeps each one in step with the snapshot.

import { bandWord, el, formatNumber, listNames, setHidden, setText } from "./dom.js";

const STATUS_WORDS = {
  pending: "Not open yet",
  voting: "Voting",
  revealed: "Revealed",
  locked: "Locked",
};

// Which facilitator buttons make sense in which case status.
const CONTROLS = {
  open: ["pending"],
  reveal: ["voting"],
  revote: ["revealed", "locked"],
  lock: ["revealed"],
};

function scoreWord(score) {
  return score === null ? "skipped" : String(score);
}

/** Cached references to the parts of one card, looked up once. */
export class CaseCard {
  constructor(root) {
    this.root = root;
    this.id = root.dataset.case;
    const part = (name) => root.querySelector(`[data-role="${name}"]`);
    this.status = part("status");
    this.round = part("round");
    this.votes = part("votes");
    this.waiting = part("waiting");
    this.vote = part("vote");
    this.mine = part("mine");
    this.results = part("results");
    this.empty = part("empty");
    this.batching = part("batching");
    this.histogram = part("histogram");
    this.stats = part("stats");
    this.median = part("median");
    this.mean = part("mean");
    this.iqr = part("iqr");
    this.consensus = part("consensus");
    this.band = part("band");
    this.abstain = part("abstain");
    this.ballots = part("ballots");
    this.controls = part("controls");
    this.scoreButtons = [...root.querySelectorAll("button[data-score]")];
    this.controlButtons = [...root.querySelectorAll("button[data-action]")];
    this.bins = [...root.querySelectorAll(".histogram__row")];
  }

  /**
   * view: {me, role, people, nameOf, nameOfId, mine: MyBallots, finished, facilitator,
   *        anonymous, offline}
   */
  render(state, view) {
    const { root } = this;
    root.dataset.status = state.status;
    this.status.dataset.status = state.status;
    setText(this.status, STATUS_WORDS[state.status] ?? state.status);
    setHidden(this.round, !(state.round > 1));
    setText(this.round, `Round ${state.round}`);

    this.renderProgress(state, view);
    this.renderVoting(state, view);
    this.renderResults(state, view);
    this.renderControls(state, view);
  }

  renderProgress(state, view) {
    // Quorum: everyone who can vote and is here, plus anyone who already voted and left.
    const counted = view.people.filter(
      (p) => p.role !== "spectator" && (p.online || p.voted.includes(state.id)),
    );
    const voted = counted.filter((p) => p.voted.includes(state.id));
    const total = counted.length;
    const text = state.status === "pending" ? "" : `${state.votes_in} of ${total} voted`;
    setText(this.votes, text);
    this.votes.dataset.votesIn = String(state.votes_in);
    this.votes.dataset.total = String(total);

    let waiting = "";
    if (state.status === "voting" && total > 0) {
      const missing = counted.filter((p) => !p.voted.includes(state.id)).map((p) => view.nameOf(p));
      if (missing.length === 0) waiting = "Everyone's in.";
      else if (voted.length === 0) waiting = "Nobody has voted yet.";
      else waiting = `Waiting for ${listNames(missing)}.`;
    }
    setText(this.waiting, waiting);
    setHidden(this.waiting, waiting === "");
  }

  renderVoting(state, view) {
    const canVote = state.status === "voting" && view.role !== "spectator" && !view.finished;
    setHidden(this.vote, !canVote);
    const has = view.mine.has(state.id);
    const chosen = has ? view.mine.get(state.id) : undefined;
    const busy = view.mine.pending.has(state.id);
    // While a vote is on its way, show the new choice; the server's answer confirms it.
    const choosing = view.mine.choosing.has(state.id);
    const shown = choosing ? view.mine.choosing.get(state.id) : chosen;
    for (const button of this.scoreButtons) {
      const value = button.dataset.score === "abstain" ? null : Number(button.dataset.score);
      const pressed = (has || choosing) && shown === value;
      button.setAttribute("aria-pressed", String(pressed));
      button.disabled = !canVote || view.offline;
      if (busy) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
    }

    // Once names are shown next to scores, "You: 3" in the ballots says it already.
    const listed =
      !view.anonymous && state.results?.ballots?.some((b) => b.participant === view.me);
    let mine = "";
    if (has && view.role !== "spectator" && !canVote && !listed) {
      mine = chosen === null ? "You skipped this one." : `You scored ${chosen}.`;
    }
    setText(this.mine, mine);
    setHidden(this.mine, mine === "");
  }

  renderResults(state, view) {
    const results = state.results;
    setHidden(this.results, !results);
    if (!results) return;

    const n = results.n || 0;
    // Anonymous live results move a few ballots at a time (the server holds the latest back),
    // so that nobody can pair a new bar with the name that just turned "voted".
    const held = state.votes_in - n - (results.abstain || 0);
    const batching = view.anonymous && state.status === "voting" && held > 0;
    setHidden(this.batching, !batching);
    if (batching) {
      setText(
        this.batching,
        `${held === 1 ? "1 vote isn't" : `${held} votes aren't`} in the chart yet. Live results ` +
          "move a few votes at a time, so nobody can tell who voted what.",
      );
    }
    // No scores (everyone skipped, or nobody voted): say so instead of showing empty bars.
    let empty = "Nobody scored this one.";
    if (results.abstain) empty = "Everyone who voted skipped this one.";
    else if (state.status === "voting") empty = "No scores yet.";
    setHidden(this.empty, n > 0);
    setText(this.empty, empty);
    setHidden(this.histogram, n === 0);
    setHidden(this.stats, n === 0);
    setHidden(this.band, n === 0);
    const mine = view.mine.has(state.id) ? view.mine.get(state.id) : undefined;
    this.bins.forEach((row, score) => {
      const count = results.histogram?.[score] ?? 0;
      row.querySelector(".histogram__bar").style.width = n ? `${(count / n) * 100}%` : "0%";
      setText(row.querySelector(".histogram__count"), String(count));
      row.dataset.mine = String(mine === score);
    });

    setText(this.median, formatNumber(results.median));
    setText(this.mean, formatNumber(results.mean));
    setText(this.iqr, formatNumber(results.iqr));
    setText(this.consensus, formatNumber(results.consensus));
    this.median.dataset.value = String(results.median ?? "");
    this.consensus.dataset.value = String(results.consensus ?? "");

    const band = results.band || "";
    this.band.dataset.band = band;
    setText(this.band, band ? bandWord(band) : "No scores yet");

    const abstain = results.abstain || 0;
    setText(this.abstain, abstain === 1 ? "1 person skipped." : `${abstain} people skipped.`);
    setHidden(this.abstain, abstain === 0 || n === 0);

    const ballots = view.anonymous ? null : results.ballots;
    setHidden(this.ballots, !ballots || ballots.length === 0);
    if (ballots) this.renderBallots(ballots, view);
  }

  renderBallots(ballots, view) {
    // Highest first, skips last: the spread reads left to right.
    const sorted = [...ballots].sort((a, b) => (b.score ?? -1) - (a.score ?? -1));
    const key = JSON.stringify(
      sorted.map((b) => [b.participant, b.score, view.nameOfId(b.participant)]),
    );
    if (this.ballots.dataset.key === key) return;
    this.ballots.dataset.key = key;
    this.ballots.replaceChildren(
      ...sorted.map((b) => {
        const who = b.participant === view.me ? "You" : view.nameOfId(b.participant);
        return el(
          "li",
          { dataset: { participant: b.participant } },
          `${who}: `,
          el("strong", { text: scoreWord(b.score) }),
        );
      }),
    );
  }

  renderControls(state, view) {
    const show = view.facilitator && !view.finished;
    setHidden(this.controls, !show);
    if (!show) return;
    for (const button of this.controlButtons) {
      const allowed = CONTROLS[button.dataset.action] ?? [];
      setHidden(button, !allowed.includes(state.status));
      if (view.offline) button.setAttribute("aria-disabled", "true");
      else button.removeAttribute("aria-disabled");
    }
  }
}
