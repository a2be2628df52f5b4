// The console's shell: sign-in, the header, and a hash router over the pages.
// Routes: #/create, #/tasks, #/tasks/<id>, #/integrate, #/operate.

import { ApiError, api, token } from "./api.js";
import { h, field, replace } from "./dom.js";
import { getLang, setLang, t } from "./i18n.js";
import * as createPage from "./pages/create.js";
import * as integratePage from "./pages/integrate.js";
import * as operatePage from "./pages/operate.js";
import * as taskPage from "./pages/task.js";
import * as tasksPage from "./pages/tasks.js";

const ROUTES = [
  { name: "create", pattern: /^\/create$/, page: createPage },
  { name: "tasks", pattern: /^\/tasks$/, page: tasksPage },
  { name: "tasks", pattern: /^\/tasks\/([A-Za-z0-9_.:-]+)$/, page: taskPage },
  { name: "integrate", pattern: /^\/integrate$/, page: integratePage },
  { name: "operate", pattern: /^\/operate$/, page: operatePage },
];
const NAV = ["create", "tasks", "integrate", "operate"];

// What pages share while the tab lives: cached lookups, the create form's draft and task.
const state = { cache: new Map() };

/** Fetch ``path`` once per session (the catalog, the provider list). */
state.once = (path) => {
  if (!state.cache.has(path)) {
    const pending = api(path).catch((exc) => {
      state.cache.delete(path);
      throw exc;
    });
    state.cache.set(path, pending);
  }
  return state.cache.get(path);
};

function location_() {
  const raw = window.location.hash.replace(/^#/, "") || "/create";
  const [path, query] = raw.split("?");
  return { path, query: new URLSearchParams(query || "") };
}

export function navigate(path, query) {
  const qs = query ? new URLSearchParams(
    Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString() : "";
  window.location.hash = qs ? `${path}?${qs}` : path;
}

let leave = null;

function render({ focus = false } = {}) {
  leave?.abort();
  leave = null;
  const root = document.getElementById("app");
  document.documentElement.lang = getLang() === "zh" ? "zh-CN" : "en";
  if (!token.get()) {
    document.title = `${t("signin.title")} · ${t("brand")}`;
    replace(root, signIn());
    root.querySelector("input")?.focus();
    return;
  }
  const { path, query } = location_();
  const route = ROUTES.find((r) => r.pattern.test(path)) || ROUTES[0];
  const params = path.match(route.pattern)?.slice(1) || [];
  const main = h("main", { id: "main", tabindex: "-1", class: `page page-${route.name}` });
  replace(root, header(route.name), main);
  document.title = `${t(`nav.${route.name}`)} · ${t("brand")}`;
  leave = new AbortController();
  route.page.render(main, { params, query, state, signal: leave.signal, navigate });
  if (focus) main.focus({ preventScroll: true });
}

function header(current) {
  const other = getLang() === "zh" ? "en" : "zh";
  return h("header", { class: "topbar" },
    h("a", { class: "brand", href: "#/create" }, h("span", { class: "logo", "aria-hidden": "true" }, "▶"),
      t("brand")),
    h("nav", { "aria-label": t("nav.label") },
      NAV.map((name) => h("a", {
        href: `#/${name}`,
        "aria-current": name === current ? "page" : null,
      }, t(`nav.${name}`)))),
    h("div", { class: "tools" },
      h("button", {
        type: "button", class: "ghost", lang: other === "zh" ? "zh-CN" : "en",
        title: t("lang.switch"), testid: "lang-toggle",
        onclick: () => { setLang(other); render(); },
      }, other === "zh" ? "中文" : "English"),
      h("button", {
        type: "button", class: "ghost",
        onclick: () => {
          // Nothing of this session's work stays for whoever signs in next in this tab.
          token.clear();
          state.cache.clear();
          for (const key of ["draft", "current", "prefill", "taskCursors"]) delete state[key];
          render();
        },
      }, t("signout"))));
}

function signIn() {
  const input = h("input", {
    type: "password", name: "token", testid: "token-input", required: true,
    autocomplete: "off", spellcheck: "false", autocapitalize: "off",
  });
  const error = h("p", { class: "alert error", testid: "error-message", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", testid: "token-submit" }, t("signin.submit"));
  const other = getLang() === "zh" ? "en" : "zh";
  return h("main", { id: "main", class: "signin-wrap" },
    h("form", {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        submit.disabled = true;
        error.hidden = true;
        try {
          // Who the token is (and whether it is an admin): kept for this session.
          const me = await api("v1/me", { headers: { Authorization: `Bearer ${value}` } });
          token.set(value);
          state.cache.set("v1/me", Promise.resolve(me));
          render({ focus: true });
        } catch (exc) {
          error.textContent = exc instanceof ApiError && [401, 403].includes(exc.status)
            ? t("signin.rejected", { message: exc.message })
            : t("error.generic", { message: exc.message });
          error.hidden = false;
          submit.disabled = false;
          input.focus();
          input.select();
        }
      },
    },
    h("h1", {}, h("span", { class: "logo", "aria-hidden": "true" }, "▶"), t("brand")),
    h("p", { class: "muted" }, t("signin.intro")),
    field(t("signin.token"), input, t("signin.hint")),
    error,
    h("div", { class: "actions" }, submit,
      h("button", {
        type: "button", class: "ghost", lang: other === "zh" ? "zh-CN" : "en",
        onclick: () => { setLang(other); render(); },
      }, other === "zh" ? "中文" : "English"))));
}

window.addEventListener("hashchange", () => render({ focus: true }));
// The skip link must not touch the hash: the hash is the router's.
document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main")?.focus();
});
render();
