// The words of the page's scripts in the reader's language. The page embeds its catalogue as
// JSON (`<script type="application/json" id="i18n">`): English text in, translated text out.

const node = document.getElementById("i18n");
const catalogue = node ? JSON.parse(node.textContent) : {};
const messages = catalogue.messages || {};

/** Put `values` into `{name}` places. */
function fill(text, values) {
  if (!values) return text;
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

/** `text` in the page's language, with `{name}` places filled from `values`. */
export function t(text, values) {
  const found = messages[text];
  return fill(typeof found === "string" && found ? found : text, values);
}

/** One of two forms by `count` (`{count}` is filled too). */
export function tn(one, other, count, values = {}) {
  const key = `${one}\u0000${other}`;
  const forms = messages[key];
  const rule = new Intl.PluralRules(catalogue.locale || "en");
  const english = count === 1 ? one : other;
  let text = english;
  if (Array.isArray(forms) && forms.length) {
    // gettext's forms for German and English: [one, other].
    text = forms[rule.select(count) === "one" ? 0 : forms.length - 1] || english;
  }
  return fill(text, { count, ...values });
}

/** The page's language (for number and date formats). */
export const locale = catalogue.locale || document.documentElement.lang || "en";
