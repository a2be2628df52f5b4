// One task: timeline, progress or player, the request, expanded prompt, route, error,
// and cancel / retry.

import { TERMINAL, api } from "../api.js";
import { copyButton, h, replace } from "../dom.js";
import { formatDateTime, formatDuration, t } from "../i18n.js";
import { observedTimeline, watchTask } from "../live.js";
import { statusChip } from "../player.js";
import { describe, progressView } from "./create.js";

const STEPS = ["queued", "expanding", "generating", "downloading", "uploading", "done"];

export function render(main, { params, state, signal, navigate }) {
  const [taskId] = params;
  const alert = h("p", { class: "alert error", testid: "error-message", role: "alert", hidden: true });
  const showError = (message) => {
    alert.textContent = message;
    alert.hidden = !message;
  };
  const heading = h("div", { class: "row-between" },
    h("h1", {}, t("task.title"), " ", h("code", {}, taskId)));
  const timeline = h("ol", { class: "timeline" });
  const live = h("div");
  const details = h("dl", { class: "kv" });
  const actions = h("div", { class: "actions" });
  replace(main,
    h("p", {}, h("a", { href: "#/tasks" }, `← ${t("nav.tasks")}`)),
    heading,
    alert,
    h("div", { class: "task-grid" },
      h("div", {},
        h("section", { class: "card" }, live, actions),
        h("section", { class: "card" }, h("h2", {}, t("task.timeline")), timeline)),
      h("section", { class: "card" }, h("h2", {}, t("task.request")), details)));

  let view = null;
  const cancel = async () => {
    try {
      const task = await api(`v1/tasks/${encodeURIComponent(taskId)}`, { method: "DELETE", signal });
      show(task);
    } catch (exc) {
      if (exc.name !== "AbortError") showError(describe(exc));
    }
  };

  function show(task, mode) {
    if (!view) {
      view = progressView(task, cancel, { heading: false });
      replace(live, view.root);
    }
    view.update(task, mode);
    replace(heading, h("h1", {}, t("task.title"), " ", h("code", {}, task.id)), statusChip(task.status));
    renderTimeline(timeline, task);
    renderDetails(details, task);
    renderActions(actions, task);
    showError(task.status === "failed" && task.error ? `${task.error.code}: ${task.error.message}` : "");
  }

  function renderActions(el, task) {
    const request = requestOf(task);
    // Inline images come back shortened ("data:image/png;base64,…"): such a task is edited, not resent.
    const complete = !/"data:[^"]*…"/.test(JSON.stringify(request));
    replace(el,
      TERMINAL.has(task.status) && complete
        ? h("button", {
          type: "button", class: "secondary",
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              const created = await api("v1/tasks", { method: "POST", body: request, signal });
              navigate(`/tasks/${(created.data ? created.data[0] : created).id}`);
            } catch (exc) {
              if (exc.name !== "AbortError") showError(describe(exc));
              event.target.disabled = false;
            }
          },
        }, t("task.retry"))
        : null,
      h("button", {
        type: "button", class: "secondary",
        onclick: () => { state.prefill = request; state.current = null; navigate("/create"); },
      }, t("task.edit")),
      copyButton(t("task.copy_id"), task.id, t("copied")));
  }

  api(`v1/tasks/${encodeURIComponent(taskId)}`, { signal })
    .then((task) => {
      show(task);
      if (!TERMINAL.has(task.status)) {
        return watchTask(taskId, { initial: task, signal, onUpdate: show }).then((final) => show(final));
      }
      return null;
    })
    .catch((exc) => {
      if (exc.name !== "AbortError") showError(describe(exc));
    });
}

/** What to send again: the stored request, or what the task itself shows on older gateways. */
function requestOf(task) {
  if (task.request && Object.keys(task.request).length) {
    const { wait_s: _wait, ...request } = task.request;
    return request;
  }
  return { prompt: task.prompt, ...(task.provider ? { provider: task.provider } : {}) };
}

function renderTimeline(el, task) {
  const times = { queued: task.created_at };
  // Server-side stage times when the gateway records them; else what this tab has watched.
  const recorded = Array.isArray(task.timeline) ? task.timeline : [];
  for (const entry of recorded) {
    const key = entry.stage || entry.status;
    if (key && entry.at && !times[key]) times[key] = entry.at;
  }
  for (const entry of observedTimeline(task.id)) {
    if (!times[entry.key]) times[entry.key] = entry.at;
  }
  if (TERMINAL.has(task.status)) times.done = task.finished_at || task.updated_at;

  const reached = task.status === "queued" ? 0
    : task.status === "running" ? Math.max(1, STEPS.indexOf(task.stage))
      : STEPS.length - 1;
  let missing = false;
  replace(el, STEPS.map((step, index) => {
    if (step === "downloading" && !times.downloading && task.stage !== "downloading") return null;
    let state = index < reached ? "past" : index === reached ? "current" : "future";
    // A task whose prompt went out as written never expanded anything.
    if (step === "expanding" && task.expanded_by === "none" && !times.expanding) state = "skipped";
    const label = step === "done" && TERMINAL.has(task.status)
      ? t(`status.${task.status}`, {}, task.status) : t(`stage.${step}`, {}, step);
    const at = times[step];
    if (!at && state === "past") missing = true;
    return h("li", { class: `step ${state} ${step === "done" ? `end-${task.status}` : ""}` },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "step-label" }, label),
      h("time", { class: "muted small", datetime: at ? new Date(at).toISOString() : null },
        at ? formatDateTime(at) : state === "past" ? "—" : state === "skipped" ? t("task.skipped") : ""));
  }));
  const start = new Date(task.created_at);
  const end = TERMINAL.has(task.status) ? new Date(times.done) : new Date();
  el.append(h("li", { class: "summary muted small" },
    t("task.elapsed", { d: formatDuration(end - start) }),
    missing ? h("div", {}, t("task.timeline.partial")) : null));
}

function renderDetails(el, task) {
  const request = task.request || {};
  const rows = [
    [t("task.prompt"), h("p", { class: "prewrap" }, task.prompt)],
    [t("task.expanded"), task.expanded_prompt
      ? h("div", {}, h("p", { class: "prewrap" }, task.expanded_prompt),
        task.expanded_by ? h("span", { class: "chip" }, t(`expanded_by.${task.expanded_by}`, {}, task.expanded_by)) : null)
      : h("span", { class: "muted" }, "—")],
    [t("task.provider"), task.provider || "—"],
    [t("task.route"), task.route_reason || "—"],
    [t("task.provider_task"), task.provider_task_id
      ? h("code", {}, `${task.provider_task_id}${task.provider_status ? ` (${task.provider_status})` : ""}`) : "—"],
    [t("task.created"), formatDateTime(task.created_at)],
  ];
  if (task.error) {
    rows.push([t("task.error"), h("div", {},
      h("code", {}, task.error.code), " ", task.error.message,
      task.error.retryable ? h("span", { class: "chip" }, t("task.retryable")) : null)]);
  }
  if (task.warnings?.length) rows.push([t("task.warnings"), h("ul", {}, task.warnings.map((w) => h("li", {}, w)))]);
  if (task.group_id) {
    rows.push([t("task.group"), h("a", { href: `#/tasks?group_id=${encodeURIComponent(task.group_id)}` }, task.group_id)]);
  }
  if (task.cached_from) rows.push([t("task.cached_from"), h("a", { href: `#/tasks/${task.cached_from}` }, task.cached_from)]);
  if (Array.isArray(task.shots) && task.shots.length) {
    rows.push([t("task.shots"), h("ol", {}, task.shots.map((shot) => h("li", {},
      statusChip(shot.status), " ", shot.prompt || "",
      shot.video_url ? [" ", h("a", { href: shot.video_url, target: "_blank", rel: "noopener" }, "▶")] : null)))]);
  }
  if (task.caption) rows.push([t("task.caption"), h("p", { class: "prewrap" }, String(task.caption))]);
  const shown = Object.keys(request).length ? request : null;
  rows.push([t("task.body"), h("pre", { class: "code small" }, JSON.stringify(shown || { prompt: task.prompt }, null, 2))]);
  if (task.params && Object.keys(task.params).length) {
    rows.push([t("task.params"), h("pre", { class: "code small" }, JSON.stringify(task.params, null, 2))]);
  }
  if (task.metadata && Object.keys(task.metadata).length) {
    rows.push([t("task.metadata"), h("pre", { class: "code small" }, JSON.stringify(task.metadata, null, 2))]);
  }
  replace(el, rows.map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]));
}
