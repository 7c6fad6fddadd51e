// A text field that stops taking characters says so, rather than cutting what is typed or
// pasted without a word: at its maxlength a short note appears under it (and is spoken).
// Fields with a counter of their own (aria-describedby naming a "-count" element) are left alone.

import { t } from "./i18n.js";

export function sayLimits(root = document) {
  for (const field of root.querySelectorAll("input[maxlength], textarea[maxlength]")) {
    if ((field.getAttribute("aria-describedby") || "").includes("count")) continue;
    const note = document.createElement("p");
    note.className = "field__limit";
    note.id = `${field.id || "field"}-limit`;
    note.setAttribute("aria-live", "polite");
    note.hidden = true;
    field.insertAdjacentElement("afterend", note);
    const described = field.getAttribute("aria-describedby");
    field.setAttribute("aria-describedby", described ? `${described} ${note.id}` : note.id);
    const check = () => {
      const max = field.maxLength;
      const full = max > 0 && field.value.length >= max;
      note.hidden = !full;
      note.textContent = full ? t("That's the limit: {max} characters.", { max }) : "";
    };
    field.addEventListener("input", check);
    check();
  }
}
