// What the room tells people outside the cards: error toasts, and what changed, spoken (a
// polite live region) and shown in the sticky bar where the person is.

import { t } from "../i18n.js";
import { tally } from "./quorum.js";

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
 * What is worth saying about the change from `before` to `after`: the moments of a session
 * (a question opens, everyone has voted, scores are revealed, a timer starts, the session
 * ends, the verdict changes), never single ballots. Returns {spoken, event} where `event`,
 * if any, is {text, caseId} for the sticky bar; `me` is my participant id.
 */
export function describeChanges(before, after, titleOf, me) {
  const old = new Map(before.cases.map((c) => [c.id, c]));
  const opened = [];
  const revealed = [];
  const complete = [];
  const timed = [];
  for (const c of after.cases) {
    const was = old.get(c.id);
    if (!was) continue;
    if (was.status !== c.status || was.round !== c.round) {
      if (c.status === "voting") opened.push(c.id);
      else if (was.status === "voting") revealed.push(c.id);
    } else if (c.status === "voting") {
      const then = tally(before.participants, c.id);
      const now = tally(after.participants, c.id);
      if (now.total > 0 && now.voted === now.total && then.voted < then.total) complete.push(c.id);
      if (c.deadline && c.deadline !== was.deadline) timed.push(c.id);
    }
  }

  const parts = [];
  let event = null;
  const one = (ids, single, many) => {
    if (ids.length === 1) return t(single, { title: titleOf(ids[0]) });
    return t(many, { count: ids.length });
  };
  if (before.session.status !== "finished" && after.session.status === "finished") {
    parts.push(t("The session is finished."));
    event = { text: t("The session is finished: see the verdict."), caseId: null };
  } else {
    if (opened.length) {
      const text = one(opened, "Voting is open: {title}.", "Voting is open on {count} questions.");
      parts.push(text);
      event = { text, caseId: opened[0] };
    }
    if (complete.length) {
      parts.push(
        one(complete, "Everyone has voted on {title}.", "Everyone has voted on {count} questions."),
      );
    }
    if (revealed.length) {
      const text = one(
        revealed,
        "Scores revealed: {title}.",
        "Scores revealed on {count} questions.",
      );
      parts.push(text);
      event = { text, caseId: revealed[0] };
    }
    if (timed.length) {
      parts.push(
        one(timed, "A timer is running on {title}.", "A timer is running on {count} questions."),
      );
    }
    const nudge = after.session.nudge;
    if (nudge && nudge.at !== before.session.nudge?.at) {
      const mine = (nudge.cases || []).filter((id) => {
        const c = after.cases.find((x) => x.id === id);
        const self = after.participants.find((p) => p.id === me);
        return c && c.status === "voting" && self && !self.voted.includes(id);
      });
      if (mine.length) {
        const text = one(
          mine,
          "The facilitator is waiting for your score on {title}.",
          "The facilitator is waiting for your scores on {count} questions.",
        );
        parts.push(text);
        event = { text, caseId: mine[0] };
      }
    }
  }
  const verdict = after.recommendation?.verdict;
  if (verdict && verdict !== before.recommendation?.verdict) {
    parts.push(t("Recommendation: {verdict}", { verdict }));
  }
  return { spoken: parts.join(" "), event };
}
