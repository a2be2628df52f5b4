// A tiny element builder. Text always goes in as text nodes (never as HTML), so nothing a task,
// a prompt or an error message contains can turn into markup.

/**
 * h("button", {class: "primary", testid: "generate", onclick: fn}, "Generate")
 * Attribute names map to attributes, except: class, text, testid, dataset (object),
 * on<event> (listeners) and value/checked/disabled/selected/hidden (set as properties).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (["value", "checked", "disabled", "selected", "hidden"].includes(key)) {
      el[key] = value;
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let fieldCount = 0;

/** A labelled form control (label for=, and the hint as its description). */
export function field(label, control, hint) {
  fieldCount += 1;
  control.id ||= `f${fieldCount}`;
  const note = hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (note) control.setAttribute("aria-describedby", note.id);
  return h("div", { class: "field" }, h("label", { class: "label", for: control.id }, label), control, note);
}

/** Copy text to the clipboard; falls back to a hidden textarea where the API is missing. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "offscreen", readonly: true }, text);
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

/** A button that copies ``text()`` and says so for a moment. */
export function copyButton(label, text, doneLabel) {
  const button = h("button", { type: "button", class: "secondary" }, label);
  button.addEventListener("click", async () => {
    await copyText(typeof text === "function" ? text() : text);
    button.textContent = doneLabel;
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}
