// Small DOM and formatting helpers shared by the room modules. Text always goes in as textContent.

import { t, tn } from "../i18n.js";

/**
 * Build an element. `props` may hold `class`, `text`, `dataset` (object) and any attribute;
 * children are nodes or strings (strings become text nodes, never markup).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Set text only when it changed, so live regions don't repeat themselves. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

/** 3 -> "3", 2.5 -> "2.5", 0.8341 -> "0.83", null -> "–" (matches the results page). */
export function formatNumber(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toFixed(digits)));
}

/** A signed value with a real minus sign: +1.50, −0.50. */
export function formatSigned(value, digits = 2) {
  const body = Math.abs(value).toFixed(digits);
  if (value > 0) return `+${body}`;
  if (value < 0) return `\u2212${body}`;
  return body;
}

export function bandWord(band) {
  switch (band) {
    case "strong":
      return t("Strong agreement");
    case "moderate":
      return t("Moderate agreement");
    case "weak":
      return t("Weak agreement");
    default:
      return "";
  }
}

/**
 * A question's agreement in words, the same in the room and on the presenter view, with the
 * re-vote advice of the Delphi rule (the server's revote_suggested) where a re-vote can still
 * happen: weak agreement is worth one only while the middle half is more than a step apart and
 * the last round helped. No advice while voting, once locked or once the session is over.
 */
export function agreementText(results, state, finished = false) {
  const word = bandWord(results.band);
  if (results.band !== "weak" || state.status !== "revealed" || finished) return word;
  if (results.revote_suggested) return t("Weak agreement — worth a re-vote");
  if (results.iqr !== null && results.iqr <= 1) {
    return t("Weak agreement, though the middle half is within a step: no re-vote needed");
  }
  return t("Weak agreement, and the last re-vote barely moved it: another is unlikely to help");
}

/** "Ana", "Ana and Ben", "Ana, Ben and 3 others". */
export function listNames(names, max = 4) {
  if (names.length <= 1) return names.join("");
  if (names.length <= max) {
    return t("{names} and {last}", { names: names.slice(0, -1).join(", "), last: names.at(-1) });
  }
  const rest = names.length - (max - 1);
  return tn("{names} and {count} other", "{names} and {count} others", rest, {
    names: names.slice(0, max - 1).join(", "),
  });
}
