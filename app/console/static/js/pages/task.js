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
  // Another tenant's task (an admin following a link from Operate or "all tenants"): read and
  // cancelled with ?owner=all; not retried from here (a retry would be the admin's own task).
  let foreign = false;
  const cancel = async () => {
    try {
      const task = await api(`v1/tasks/${encodeURIComponent(taskId)}`, {
        method: "DELETE", query: foreign ? { owner: "all" } : undefined, signal,
      });
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
    replace(heading, h("h1", {}, t("task.title"), " ", h("code", {}, task.id)), h("span", {},
      statusChip(task.status),
      foreign ? h("span", { class: "chip", testid: "foreign-task" }, t("task.foreign")) : null));
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
      TERMINAL.has(task.status) && complete && !foreign
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

  async function read() {
    const path = `v1/tasks/${encodeURIComponent(taskId)}`;
    try {
      return await api(path, { signal });
    } catch (exc) {
      const me = exc.status === 404 ? await state.once("v1/me").catch(() => null) : null;
      if (!me?.admin) throw exc;
      const task = await api(path, { query: { owner: "all" }, signal });
      foreign = true;
      return task;
    }
  }

  read()
    .then((task) => {
      show(task);
      // The stream replays the task's stored events first: the timeline's times.
      return watchTask(taskId, {
        initial: task, signal, onUpdate: show, history: true, owner: foreign ? "all" : undefined,
      }).then((final) => {
        show(final);
        timeline.dataset.complete = "true"; // the history, if any, has been read
      });
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
  // From the task's event history (exact) or what this tab saw happen.
  for (const entry of observedTimeline(task.id)) {
    if (entry.key !== "queued" || entry.exact) times[entry.key] = entry.at;
  }
  if (TERMINAL.has(task.status)) times.done = task.finished_at || times[task.status] || task.updated_at;

  const reached = task.status === "queued" ? 0
    : task.status === "running" ? Math.max(1, STEPS.indexOf(task.stage))
      : STEPS.length - 1;
  let missing = false;
  const start = new Date(task.created_at);
  replace(el, STEPS.map((step, index) => {
    if (step === "downloading" && !times.downloading && task.stage !== "downloading") return null;
    let state = index < reached ? "past" : index === reached ? "current" : "future";
    // A task that failed or was cancelled stopped somewhere: only what is known to have
    // happened is drawn as passed.
    if (state === "past" && task.status !== "succeeded" && TERMINAL.has(task.status) && step !== "queued"
      && !times[step] && !(step === "generating" && task.provider_task_id)) state = "future";
    // A task whose prompt went out as written never expanded anything; a reused video never
    // went to a provider at all.
    if (step === "expanding" && task.expanded_by === "none" && !times.expanding) state = "skipped";
    if (task.cached_from && state === "past" && !times[step]) state = "skipped";
    const label = step === "done" && TERMINAL.has(task.status)
      ? t(`status.${task.status}`, {}, task.status) : t(`stage.${step}`, {}, step);
    const at = times[step];
    if (!at && state === "past") missing = true;
    return h("li", { class: `step ${state} ${step === "done" ? `end-${task.status}` : ""}`, dataset: { step } },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "step-label" }, label),
      // The first step says when; the others how long after it (the full time on hover).
      h("time", {
        class: "muted small", datetime: at ? new Date(at).toISOString() : null,
        title: at ? formatDateTime(at) : null,
      }, at ? (step === "queued" ? formatDateTime(at) : `+${formatDuration(new Date(at) - start)}`)
        : state === "past" ? "—" : state === "skipped" ? t("task.skipped") : ""));
  }));
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
    ...(task.owner ? [[t("task.owner"), h("span", { testid: "task-owner" }, task.owner)]] : []),
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
    rows.push([task.group_id.startsWith("vb_") ? t("task.batch") : t("task.group"),
      h("a", { href: `#/tasks?group_id=${encodeURIComponent(task.group_id)}` }, task.group_id)]);
  }
  if (task.cached_from) {
    rows.push([t("task.cached_from"), h("div", {},
      h("a", { href: `#/tasks/${encodeURIComponent(task.cached_from)}`, testid: "cached-from" }, task.cached_from),
      h("div", { class: "muted small" }, t("task.cached_from.hint")))]);
  }
  if (task.remixed_from) {
    rows.push([t("task.remixed_from"),
      h("a", { href: `#/tasks/${encodeURIComponent(task.remixed_from)}`, testid: "remixed-from" }, task.remixed_from)]);
  }
  if (task.last_frame_url) {
    rows.push([t("task.last_frame"), h("a", { href: task.last_frame_url, target: "_blank", rel: "noopener" },
      h("img", { class: "thumb", src: task.last_frame_url, alt: t("task.last_frame") }))]);
  }
  if (Array.isArray(task.shots) && task.shots.length) {
    // Each shot is a task of its own (its page shows its provider job and error).
    rows.push([t("task.shots"), h("ol", { class: "shot-list" }, task.shots.map((shot) => h("li", {},
      statusChip(shot.status),
      shot.status === "running" && shot.progress != null ? h("span", { class: "muted small" }, ` ${shot.progress}%`) : null,
      shot.duration_ms ? h("span", { class: "muted small" }, ` ${formatDuration(shot.duration_ms)}`) : null, " ",
      shot.task_id ? h("a", { href: `#/tasks/${encodeURIComponent(shot.task_id)}` }, shot.prompt || shot.task_id) : shot.prompt || "",
      shot.video_url ? [" ", h("a", { href: shot.video_url, target: "_blank", rel: "noopener", "aria-label": t("task.shot.play") }, "▶")] : null,
      shot.error ? h("div", { class: "muted small" }, h("code", {}, shot.error.code), " ", shot.error.message) : null)))]);
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
