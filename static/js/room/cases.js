// Case cards: the server renders their skeleton; this keeps each one in step with the snapshot.

import { t, tn } from "../i18n.js";
import { formatLeft } from "./bar.js";
import { agreementText, el, formatNumber, listNames, setHidden, setText } from "./dom.js";
import { MIN_CROWD, tally } from "./quorum.js";

const STATUS_WORDS = {
  pending: () => t("Not open yet"),
  voting: () => t("Voting"),
  revealed: () => t("Revealed"),
  locked: () => t("Locked"),
};

// Which facilitator buttons make sense in which case status.
const CONTROLS = {
  open: ["pending"],
  reveal: ["voting"],
  revote: ["revealed"], // a locked result is final
  lock: ["revealed"],
};
// "Close voting" (a lock while voting) is offered in anonymous sessions, where a reveal may be
// refused for want of scores: it ends voting for good, without results if too few scored.
const CLOSE = ["voting"];

const BAND_SHORT = {
  strong: () => t("strong"),
  moderate: () => t("moderate"),
  weak: () => t("weak"),
};

// A nudge older than this is history, not a reminder.
const NUDGE_FRESH_S = 600;

/** What a score means in words: "3 (Clearly)", "? (can't judge)". */
export function scoreMeaning(score, scale) {
  if (score === null) return t("? (can’t judge)");
  const label = scale?.[score];
  return label ? `${score} (${label})` : String(score);
}

/** Cached references to the parts of one card, looked up once. */
export class CaseCard {
  constructor(root, scale) {
    this.root = root;
    this.scale = scale;
    this.id = root.dataset.case;
    const part = (name) => root.querySelector(`[data-role="${name}"]`);
    for (const name of [
      "status",
      "round",
      "votes",
      "deadline",
      "waiting",
      "nudge",
      "withheld",
      "vote",
      "choice",
      "reason",
      "mine",
      "results",
      "empty",
      "batching",
      "histogram",
      "stats",
      "median",
      "mean",
      "iqr",
      "consensus",
      "band",
      "abstain",
      "ballots",
      "reasons",
      "history",
      "controls",
      "timer",
    ]) {
      this[name] = part(name);
    }
    this.reasonInput = part("reason-input");
    this.reasonCount = part("reason-count");
    this.reasonsList = part("reasons-list");
    this.historyList = part("history-list");
    this.historyTitle = part("history-title");
    this.lockHint = part("lock-hint");
    this.crowdHint = part("crowd-hint");
    this.controlError = part("control-error");
    this.timerSeconds = part("timer-seconds");
    this.scoreButtons = [...root.querySelectorAll("button[data-score]")];
    this.controlButtons = [...root.querySelectorAll("button[data-action]")];
    this.bins = [...root.querySelectorAll(".histogram__row")];
    this.deadlineAt = null;
    this.reasonRound = null;
    this.errorFor = null; // the status and round a refusal shown in the controls was about
  }

  /**
   * view: {me, role, people, nameOf, nameOfId, mine: MyBallots, finished, facilitator,
   *        anonymous, offline, nudge}
   */
  render(state, view) {
    const { root } = this;
    root.dataset.status = state.status;
    root.dataset.withheld = String(Boolean(state.withheld));
    this.status.dataset.status = state.status;
    const status = state.withheld ? t("Closed") : STATUS_WORDS[state.status]?.();
    setText(this.status, status ?? state.status);
    setHidden(this.round, !(state.round > 1));
    setText(this.round, t("Round {round}", { round: state.round }));

    this.renderProgress(state, view);
    this.renderVoting(state, view);
    this.renderResults(state, view);
    this.renderHistory(state);
    this.renderControls(state, view);
  }

  renderProgress(state, view) {
    const { voted, total, missing } = tally(view.people, state, view.anonymous);
    const text =
      state.status === "pending"
        ? ""
        : t("{voted} of {total} voted", { voted, total });
    setText(this.votes, text);
    this.votes.dataset.votesIn = String(voted);
    this.votes.dataset.total = String(total);

    // Names of who hasn't voted only where the room knows them: never in an anonymous session.
    let waiting = "";
    if (state.status === "voting" && total > 0) {
      if (missing ? missing.length === 0 : voted >= total) waiting = t("Everyone's in.");
      else if (voted === 0) waiting = t("Nobody has voted yet.");
      else if (missing) {
        waiting = t("Waiting for {names}.", { names: listNames(missing.map(view.nameOf)) });
      }
    }
    setText(this.waiting, waiting);
    setHidden(this.waiting, waiting === "");

    this.deadlineAt = state.status === "voting" && state.deadline ? state.deadline : null;
    this.tick();

    const nudged =
      state.status === "voting" &&
      view.role !== "spectator" &&
      !view.finished &&
      !view.mine.has(state.id) &&
      view.nudge?.by !== view.me &&
      Boolean(view.nudge?.cases?.includes(state.id)) &&
      Date.now() / 1000 - (view.nudge?.at ?? 0) < NUDGE_FRESH_S;
    setHidden(this.nudge, !nudged);
    this.root.dataset.nudged = String(nudged);
  }

  /** The countdown's text; called every second while a deadline runs. */
  tick() {
    const at = this.deadlineAt;
    setHidden(this.deadline, at === null);
    if (at === null) return;
    const left = at - Date.now() / 1000;
    this.deadline.dataset.urgent = String(left <= 10);
    setText(
      this.deadline,
      left > 0
        ? t("Voting closes in {left}", { left: formatLeft(at) })
        : t("Time's up: closing…"),
    );
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
    let tabStop = null;
    for (const button of this.scoreButtons) {
      const value = button.dataset.score === "abstain" ? null : Number(button.dataset.score);
      const pressed = (has || choosing) && shown === value;
      button.setAttribute("aria-pressed", String(pressed));
      button.disabled = !canVote || view.offline;
      if (busy) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
      if (pressed) tabStop = button;
    }
    // One Tab stop per question (the chosen score, else the first); arrows move within.
    tabStop = tabStop || this.scoreButtons[0];
    for (const button of this.scoreButtons) button.tabIndex = button === tabStop ? 0 : -1;

    let choice = "";
    if (canVote && (has || choosing)) {
      choice = busy
        ? t("Sending {score}…", { score: scoreMeaning(shown, this.scale) })
        : t("Your score: {score}. You can change it until the reveal.", {
            score: scoreMeaning(shown, this.scale),
          });
    }
    setText(this.choice, choice);

    // A new round starts with an empty reason; otherwise keep what the person is typing.
    if (this.reasonRound !== state.round) {
      if (this.reasonRound !== null) {
        this.reasonInput.value = "";
        this.reason.open = false;
      }
      this.reasonRound = state.round;
    }
    if (document.activeElement !== this.reasonInput) {
      const saved = view.mine.reasons.get(state.id) ?? "";
      if (saved && !this.reasonInput.value) {
        this.reasonInput.value = saved;
        this.reason.open = true;
      }
    }
    this.countReason();

    // Once names are shown next to scores, "You: 3" in the ballots says it already.
    const listed =
      !view.anonymous && state.results?.ballots?.some((b) => b.participant === view.me);
    let mine = "";
    if (has && view.role !== "spectator" && !canVote && !listed) {
      mine = t("You scored {score}.", { score: scoreMeaning(chosen, this.scale) });
    }
    setText(this.mine, mine);
    setHidden(this.mine, mine === "");
  }

  countReason() {
    const n = this.reasonInput.value.length;
    setText(this.reasonCount, t("{n} of 280 characters", { n }));
  }

  renderResults(state, view) {
    const results = state.results;
    setHidden(this.results, !results);
    setHidden(this.withheld, !state.withheld);
    if (state.withheld) {
      setText(
        this.withheld,
        t("Voting closed without results: fewer than {crowd} people scored this question.", {
          crowd: MIN_CROWD,
        }),
      );
    }
    if (!results) return;

    const n = results.n || 0;
    // Anonymous live results move in steps of at least three people's changes, so that
    // nobody can pair a new bar with the person whose vote just came in.
    const held = state.votes_in - n - (results.abstain || 0);
    const batching = view.anonymous && state.status === "voting" && held > 0;
    setHidden(this.batching, !batching);
    if (batching) {
      const heldText = tn(
        "{count} vote isn't in the chart yet.",
        "{count} votes aren't in the chart yet.",
        held,
      );
      const why = t(
        "The chart moves once at least {crowd} people have voted or changed their vote, so nobody can tell who voted what.",
        { crowd: MIN_CROWD },
      );
      setText(this.batching, heldText + " " + why);
    }
    // No scores (everyone skipped, or nobody voted): say so instead of showing empty bars.
    let empty = t("Nobody scored this one.");
    if (results.abstain) empty = t("Everyone who voted skipped this one.");
    else if (state.status === "voting") empty = t("No scores yet.");
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
    setText(this.band, band ? agreementText(results, state, view.finished) : t("No scores yet"));

    const abstain = results.abstain || 0;
    setText(this.abstain, tn("{count} person skipped.", "{count} people skipped.", abstain));
    setHidden(this.abstain, abstain === 0 || n === 0);

    const ballots = view.anonymous ? null : results.ballots;
    setHidden(this.ballots, !ballots || ballots.length === 0);
    if (ballots) this.renderBallots(ballots, view);
    this.renderReasons(results.reasons || [], view);
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
        const who = b.participant === view.me ? t("You") : view.nameOfId(b.participant);
        return el(
          "li",
          { dataset: { participant: b.participant } },
          `${who}: `,
          el("strong", { text: b.score === null ? "?" : String(b.score) }),
        );
      }),
    );
  }

  renderReasons(reasons, view) {
    setHidden(this.reasons, reasons.length === 0);
    const key = JSON.stringify([reasons, view.anonymous ? null : reasons.map((r) => view.nameOfId(r.participant))]);
    if (this.reasons.dataset.key === key) return;
    this.reasons.dataset.key = key;
    this.reasonsList.replaceChildren(
      ...reasons.map((r) => {
        let who;
        if (!r.participant) who = t("someone who scored {score}", { score: r.score ?? "?" });
        else {
          const name = r.participant === view.me ? t("you") : view.nameOfId(r.participant);
          who = t("{name}, who scored {score}", { name, score: r.score ?? "?" });
        }
        return el(
          "li",
          { class: "case-reasons__item" },
          el("q", { class: "case-reasons__text", text: r.text }),
          el("span", { class: "case-reasons__who", text: ` — ${who}` }),
        );
      }),
    );
  }

  /** Earlier rounds stay in view (during a re-vote too), newest first, after the current
   *  round once it is revealed: round 2 beside round 1, and whether agreement grew. */
  renderHistory(state) {
    const earlier = state.history || state.results?.history || [];
    const results = state.results;
    const now =
      earlier.length && results && state.status !== "voting"
        ? [{ ...results, round: state.round, now: true }]
        : [];
    const history = [...earlier, ...now];
    setHidden(this.history, earlier.length === 0);
    // With the round just revealed among them, they are not all earlier ones.
    setText(this.historyTitle, now.length ? t("Every round") : t("Earlier rounds"));
    const key = JSON.stringify(history);
    if (this.history.dataset.key === key) return;
    this.history.dataset.key = key;
    this.historyList.replaceChildren(
      ...[...history].reverse().map((round) => {
        const counts = round.histogram || [];
        const most = Math.max(1, ...counts);
        const spark = el(
          "span",
          { class: "spark", "aria-hidden": "true" },
          counts.map((count) => {
            const bar = el("span", { class: "spark__bar" });
            bar.style.height = `${Math.max(8, (count / most) * 100)}%`;
            bar.dataset.empty = String(count === 0);
            return bar;
          }),
        );
        // A withheld round (too few scores in an anonymous session) has no figures at all.
        let words = round.n
          ? t("Round {round}: median {median}, agreement {consensus} ({band}), {n} scores", {
              round: round.round,
              median: formatNumber(round.median),
              consensus: formatNumber(round.consensus),
              band: BAND_SHORT[round.band]?.() ?? "",
              n: round.n,
            })
          : round.n === null
            ? t("Round {round}: closed without results", { round: round.round })
            : t("Round {round}: no scores", { round: round.round });
        if (typeof round.change === "number") {
          const change = formatNumber(Math.abs(round.change));
          words +=
            "; " +
            (round.change > 0
              ? t("agreement grew by {change}", { change })
              : round.change < 0
                ? t("agreement fell by {change}", { change })
                : t("agreement unchanged"));
        }
        if (round.now) words = t("This round: {round}", { round: words });
        const spread = counts.length
          ? t("Scores 0 to 4: {counts}", { counts: counts.join(", ") })
          : "";
        return el(
          "li",
          { class: "case__history-item" },
          spark,
          el("span", {}, words),
          el("span", { class: "visually-hidden", text: `. ${spread}` }),
        );
      }),
    );
  }

  renderControls(state, view) {
    const show = view.facilitator && !view.finished;
    setHidden(this.controls, !show);
    // A refusal stays until the question moves on (or the next command on it).
    if (this.errorFor && this.errorFor !== `${state.status}:${state.round}`) this.showError("");
    if (!show) return;
    for (const button of this.controlButtons) {
      const action = button.dataset.action;
      if (action === "countdown") continue; // inside the timer group
      let allowed;
      if (action === "stop_countdown") allowed = state.status === "voting" && Boolean(state.deadline);
      else if ("close" in button.dataset) allowed = view.anonymous && CLOSE.includes(state.status);
      else allowed = (CONTROLS[action] ?? []).includes(state.status);
      setHidden(button, !allowed);
    }
    setHidden(this.timer, !(state.status === "voting" && !state.deadline));
    setHidden(this.lockHint, state.status !== "revealed");
    setHidden(this.crowdHint, !(view.anonymous && state.status === "voting"));
    setText(
      this.crowdHint,
      t("Results show once at least {crowd} people have scored this question (skips don't count).", {
        crowd: MIN_CROWD,
      }),
    );
    for (const button of this.controlButtons) {
      if (view.offline) button.setAttribute("aria-disabled", "true");
      else button.removeAttribute("aria-disabled");
    }
  }

  /** A refused command's reason, shown in this question's controls ("" clears it). */
  showError(message, state = null) {
    this.errorFor = message && state ? `${state.status}:${state.round}` : null;
    setText(this.controlError, message);
    setHidden(this.controlError, !message);
    // A refusal is read where it is shown: on a phone it may fall below the fold.
    if (message) this.controlError.scrollIntoView({ block: "nearest" });
  }
}
