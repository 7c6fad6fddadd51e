// What the room tells people outside the cards: error toasts, and what changed, spoken (a
// polite live region) and shown in the sticky bar where the person is.

import { t, tn } from "../i18n.js";
import { tally } from "./quorum.js";
import { verdictSentence } from "./verdict.js";

/** Stack names as a snapshot's ranking gives them. */
function stackName(snapshot) {
  const names = new Map((snapshot.recommendation?.ranking || []).map((r) => [r.stack, r.name]));
  return (id) => names.get(id) ?? id;
}

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
 * started a new round), of those whose voting ended (revealed, locked), of those whose voting
 * ended without results (too few scores in an anonymous session), of those still being voted
 * on that everyone has now voted on, and of those whose timer started.
 */
export function caseChanges(before, after) {
  const old = new Map(before.cases.map((c) => [c.id, c]));
  const anonymous = Boolean(after.session.anonymous);
  const opened = [];
  const revealed = [];
  const withheld = [];
  const complete = [];
  const timed = [];
  for (const c of after.cases) {
    const was = old.get(c.id);
    if (!was) continue;
    if (was.status !== c.status || was.round !== c.round) {
      if (c.status === "voting") opened.push(c.id);
      else if (was.status === "voting") (c.withheld ? withheld : revealed).push(c.id);
    } else if (c.status === "voting") {
      const then = tally(before.participants, was, anonymous);
      const now = tally(after.participants, c, anonymous);
      if (now.total > 0 && now.voted === now.total && then.voted < then.total) complete.push(c.id);
      if (c.deadline && c.deadline !== was.deadline) timed.push(c.id);
    }
  }
  return { opened, revealed, withheld, complete, timed };
}

// "… {title}." for one question, "… {count} questions." for several (tn's two forms).
const about = (ids, titleOf) => [ids.length, { title: titleOf(ids[0]) }];

/**
 * The milestones between two snapshots, as sentences to speak: the session finished, or
 * questions opened and were revealed (or closed without results). Never a single vote.
 */
export function milestones(before, after, titleOf, changes = caseChanges(before, after)) {
  if (before.session.status !== "finished" && after.session.status === "finished") {
    return [t("The session is finished.")];
  }
  const parts = [];
  const { opened, revealed, withheld } = changes;
  if (opened.length) {
    parts.push(
      tn("Voting is open: {title}.", "Voting is open on {count} questions.", ...about(opened, titleOf)),
    );
  }
  if (revealed.length) {
    parts.push(
      tn("Scores revealed: {title}.", "Scores revealed on {count} questions.", ...about(revealed, titleOf)),
    );
  }
  if (withheld.length) {
    parts.push(
      tn("Voting closed without results: {title}.", "Voting closed without results on {count} questions.", ...about(withheld, titleOf)),
    );
  }
  return parts;
}

/**
 * What is worth saying about the change from `before` to `after` in the room: the
 * milestones, and also everyone having voted, a timer starting, a reminder meant for me, the
 * door closing or opening and a new verdict; never single ballots. Returns {spoken, event}
 * where `event`, if any, is {text, caseId} for the sticky bar; `me` is my participant id,
 * `myBallots` my ballots (MyBallots: an anonymous session's snapshot doesn't say who voted).
 */
export function describeChanges(before, after, titleOf, me, myBallots) {
  const changes = caseChanges(before, after);
  const { opened, revealed, withheld, complete, timed } = changes;
  const parts = milestones(before, after, titleOf, changes);
  let event = null;
  if (before.session.status !== "finished" && after.session.status === "finished") {
    event = { text: t("The session is finished: see the verdict."), caseId: null };
  } else {
    if (opened.length) event = { text: parts[0], caseId: opened[0] };
    const closed = [...revealed, ...withheld];
    if (closed.length) event = { text: parts[parts.length - 1], caseId: closed[0] };
    if (complete.length) {
      parts.push(
        tn("Everyone has voted on {title}.", "Everyone has voted on {count} questions.", ...about(complete, titleOf)),
      );
    }
    if (timed.length) {
      parts.push(
        tn("A timer is running on {title}.", "A timer is running on {count} questions.", ...about(timed, titleOf)),
      );
    }
    const nudge = after.session.nudge;
    if (nudge && nudge.at !== before.session.nudge?.at) {
      const self = after.participants.find((p) => p.id === me);
      const mine = (nudge.cases || []).filter((id) => {
        const c = after.cases.find((x) => x.id === id);
        const voted = myBallots?.has(id) || self?.voted.includes(id);
        return c && c.status === "voting" && self && !voted;
      });
      if (mine.length) {
        const text = tn("The facilitator is waiting for your score on {title}.", "The facilitator is waiting for your scores on {count} questions.", ...about(mine, titleOf));
        parts.push(text);
        event = { text, caseId: mine[0] };
      }
    }
  }
  const closed = (snapshot) => snapshot.session.door_open === false;
  if (closed(before) !== closed(after)) {
    parts.push(
      closed(after)
        ? t("The session is now closed to newcomers.")
        : t("The session is open to newcomers again."),
    );
  }
  const verdict = verdictSentence(after.recommendation, titleOf, stackName(after));
  if (verdict && verdict !== verdictSentence(before.recommendation, titleOf, stackName(before))) {
    parts.push(t("Recommendation: {verdict}", { verdict }));
  }
  return { spoken: parts.join(" "), event };
}
