// The landing page's "Your sessions": what this browser remembers, each with its status as
// the server tells it now and a link back.

import { t } from "/static/js/i18n.js";
import { forgetSession, recentSessions } from "/static/js/recent.js";
import { el } from "/static/js/room/dom.js";

const SHOWN = 10;

const ROLE_WORDS = {
  facilitator: () => t("You ran it"),
  voter: () => t("You joined"),
  spectator: () => t("You watched"),
};

async function statusOf(id) {
  try {
    const response = await fetch(`/api/sessions/${encodeURIComponent(id)}`, {
      headers: { Accept: "application/json" },
    });
    if (response.status === 404) return { gone: true };
    if (!response.ok) return null;
    const state = await response.json();
    return { title: state.session?.title, status: state.session?.status };
  } catch {
    return null; // offline: the link is still worth showing
  }
}

function describe(status) {
  if (!status) return "";
  if (status.gone) return t("Expired");
  return status.status === "finished" ? t("Finished") : t("In progress");
}

export function showRecent(section, list) {
  const sessions = recentSessions().slice(0, SHOWN);
  section.hidden = sessions.length === 0;
  list.replaceChildren(
    ...sessions.map((s) => {
      const state = el("span", { class: "recent__status pill pill--quiet", text: "…" });
      const link = el("a", { class: "recent__title", href: `/s/${encodeURIComponent(s.id)}`, text: s.title });
      const forget = el("button", {
        class: "button button--small button--ghost",
        type: "button",
        "aria-label": t("Forget “{title}”", { title: s.title }),
        text: t("Forget"),
      });
      const item = el(
        "li",
        { class: "recent__item", dataset: { session: s.id } },
        link,
        el("span", { class: "recent__meta" }, (ROLE_WORDS[s.role] ?? ROLE_WORDS.voter)(), " · ", state),
        forget,
      );
      forget.addEventListener("click", () => {
        forgetSession(s.id);
        const next = item.nextElementSibling || item.previousElementSibling;
        item.remove();
        section.hidden = list.children.length === 0;
        (next?.querySelector("a") || document.getElementById("title"))?.focus();
      });
      statusOf(s.id).then((status) => {
        state.textContent = describe(status);
        state.dataset.status = status?.gone ? "gone" : (status?.status ?? "");
        if (status?.title) link.textContent = status.title;
        if (status?.gone) link.removeAttribute("href");
      });
      return item;
    }),
  );
}
