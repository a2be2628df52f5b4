// Tasks: the caller's tasks, newest first, with filters and cursor paging. The filters live in
// the URL's hash (#/tasks?status=failed&provider=preview), so back/forward and links keep them.

import { TERMINAL, api } from "../api.js";
import { field, h, replace } from "../dom.js";
import { formatDateTime, formatDuration, relativeTime, t } from "../i18n.js";
import { statusChip } from "../player.js";
import { describe } from "./create.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 20;
const REFRESH_MS = 4000;

export function render(main, { query, state, signal, navigate }) {
  const filters = {
    status: query.get("status") || "",
    provider: query.get("provider") || "",
    group_id: query.get("group_id") || "",
    batch_id: query.get("batch_id") || "",
    before: query.get("before") || "",
  };
  const alert = h("p", { class: "alert error", testid: "error-message", role: "alert", hidden: true });
  const note = h("p", { class: "alert warn", hidden: true });

  const status = h("select", { name: "status" }, h("option", { value: "" }, t("tasks.any")),
    STATUSES.map((s) => h("option", { value: s }, t(`status.${s}`))));
  status.value = filters.status;
  const provider = h("select", { name: "provider" }, h("option", { value: "" }, t("tasks.any")));
  const group = h("input", { type: "text", name: "group_id", value: filters.group_id, placeholder: "vg_…" });
  const batch = h("input", { type: "text", name: "batch_id", value: filters.batch_id, placeholder: "vb_…" });
  state.once("v1/providers").then((list) => {
    for (const p of list.data || []) provider.append(h("option", { value: p.name }, p.name));
    provider.value = filters.provider;
  }).catch(() => {});
  if (filters.provider) {
    provider.append(h("option", { value: filters.provider }, filters.provider));
    provider.value = filters.provider;
  }

  const form = h("form", {
    class: "filters",
    onsubmit: (event) => {
      event.preventDefault();
      navigate("/tasks", {
        status: status.value, provider: provider.value,
        group_id: group.value.trim(), batch_id: batch.value.trim(),
      });
    },
  },
  field(t("tasks.status"), status), field(t("tasks.provider"), provider),
  field(t("tasks.group"), group), field(t("tasks.batch"), batch),
  h("div", { class: "actions" },
    h("button", { type: "submit", class: "secondary" }, t("tasks.apply")),
    h("a", { class: "button ghost", href: "#/tasks" }, t("tasks.reset"))));

  const body = h("tbody");
  const pager = h("div", { class: "actions pager" });
  const table = h("table", { class: "tasks" },
    h("caption", { class: "sr-only" }, t("tasks.title")),
    h("thead", {}, h("tr", {},
      [t("tasks.col.status"), t("tasks.col.prompt"), t("tasks.col.provider"), t("tasks.col.length"),
        t("tasks.col.age")].map((label) => h("th", { scope: "col" }, label)))),
    body);

  replace(main,
    h("div", { class: "row-between" }, h("h1", {}, t("tasks.title")),
      h("a", { class: "button primary", href: "#/create" }, t("tasks.new"))),
    h("section", { class: "card" }, form),
    alert, note,
    h("section", { class: "card flush" }, table, pager));

  const cursors = (state.taskCursors ||= []);
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer));

  let shown = null;
  async function load() {
    clearTimeout(timer);
    if (document.hidden && shown !== null) {
      timer = setTimeout(load, REFRESH_MS); // no polling from a tab nobody looks at
      return;
    }
    try {
      const page = await api("v1/tasks", {
        query: {
          limit: PAGE, status: filters.status, provider: filters.provider,
          group_id: filters.group_id, batch_id: filters.batch_id, before: filters.before,
        },
        signal,
      });
      let rows = page.data || [];
      // Gateways without batches ignore batch_id; say so rather than show unfiltered rows.
      if (filters.batch_id && rows.some((task) => task.batch_id !== filters.batch_id)) {
        rows = rows.filter((task) => task.batch_id === filters.batch_id);
        note.textContent = t("tasks.batch.unsupported");
        note.hidden = false;
      }
      alert.hidden = true;
      const signature = JSON.stringify(rows.map((task) => [task.id, task.status, task.progress]));
      if (signature !== shown) {
        shown = signature;
        // A refresh must not throw keyboard focus out of the table.
        const focused = document.activeElement?.closest?.("tr[data-task-id]")?.dataset.taskId;
        replace(body, rows.length ? rows.map(row) : h("tr", {},
          h("td", { colspan: 5, class: "empty muted" }, t("tasks.empty"))));
        if (focused) body.querySelector(`tr[data-task-id="${CSS.escape(focused)}"] a`)?.focus();
      }
      renderPager(page);
      // Keep the first page fresh while something on it is still running.
      if (!filters.before && rows.some((task) => !TERMINAL.has(task.status)) && !signal.aborted) {
        timer = setTimeout(load, REFRESH_MS);
      }
    } catch (exc) {
      if (exc.name === "AbortError") return;
      alert.textContent = describe(exc);
      alert.hidden = false;
    }
  }

  function renderPager(page) {
    const query = {
      status: filters.status, provider: filters.provider, group_id: filters.group_id,
      batch_id: filters.batch_id,
    };
    replace(pager,
      filters.before
        ? h("button", {
          type: "button", class: "secondary",
          onclick: () => navigate("/tasks", { ...query, before: cursors.pop() || "" }),
        }, `← ${t("tasks.newer")}`)
        : null,
      page.has_more && page.next_before
        ? h("button", {
          type: "button", class: "secondary",
          onclick: () => {
            cursors.push(filters.before);
            navigate("/tasks", { ...query, before: page.next_before });
          },
        }, `${t("tasks.older")} →`)
        : null);
    if (!filters.before) cursors.length = 0;
  }

  load();
}

function row(task) {
  const length = lengthOf(task);
  const progress = task.status === "running" ? ` ${Number(task.progress) || 0}%` : "";
  return h("tr", { testid: "task-row", dataset: { taskId: task.id } },
    h("td", {}, statusChip(task.status), progress ? h("span", { class: "muted small" }, progress) : null),
    h("td", { class: "prompt" },
      h("a", { href: `#/tasks/${encodeURIComponent(task.id)}` }, task.prompt || task.id),
      task.error ? h("div", { class: "muted small" }, h("code", {}, task.error.code)) : null),
    h("td", { "data-label": t("tasks.col.provider") }, task.provider || "—"),
    h("td", { "data-label": t("tasks.col.length") }, length ? formatDuration(length) : "—"),
    h("td", { "data-label": t("tasks.col.age") },
      h("time", { datetime: task.created_at, title: formatDateTime(task.created_at) },
        relativeTime(task.created_at))));
}

/** The video's length as asked for (the stored request), in ms; null when unknown. */
function lengthOf(task) {
  const request = task.request || {};
  if (Array.isArray(request.shots) && request.shots.length && request.shots.every((s) => s.duration_ms)) {
    return request.shots.reduce((sum, s) => sum + s.duration_ms, 0);
  }
  if (request.duration_ms) return request.duration_ms;
  if (task.params?.duration_ms_effective) return task.params.duration_ms_effective;
  return null;
}
