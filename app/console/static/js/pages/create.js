// Create: the prompt form (catalog presets, ratio, duration, provider, image, shots, expansion
// preview), then the task's live progress, ending in the player.

import { ApiError, TERMINAL, api } from "../api.js";
import { field, h, replace } from "../dom.js";
import { t } from "../i18n.js";
import { watchTask } from "../live.js";
import { player, statusChip } from "../player.js";

const RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"];
const RESOLUTIONS = ["480p", "720p", "1080p"];
// The gateway's default request body limit is 1 MiB; an inline image must leave room for the rest.
const MAX_IMAGE_CHARS = 900_000;
const MAX_SHOTS = 20;

export function render(main, { state, signal }) {
  const draft = (state.draft ||= { shots: [] });
  if (state.prefill) {
    Object.assign(draft, fromRequest(state.prefill));
    state.prefill = null;
  }

  const alert = h("p", { class: "alert error", testid: "error-message", role: "alert", hidden: true });
  const showError = (message) => {
    alert.textContent = message;
    alert.hidden = !message;
  };

  // --- the form ---------------------------------------------------------------------------
  const prompt = h("textarea", {
    id: "prompt", testid: "prompt-input", rows: 4, maxlength: 2000, required: true,
    placeholder: t("create.placeholder"), value: draft.prompt || "",
  });
  const counter = h("small", { class: "hint counter", "aria-live": "off" });
  const count = () => { counter.textContent = `${prompt.value.length} / 2000`; };
  count();

  const template = select([["", t("create.none")]], draft.template);
  const style = select([["", t("create.none")]], draft.style);
  const platform = select([["", t("create.none")]], draft.platform);
  const ratio = select(RATIOS.map((r) => [r, r]), draft.aspect_ratio || "16:9");
  const duration = h("input", {
    type: "number", min: 0.5, max: 60, step: 0.5, value: draft.duration_s ?? 5, required: true,
  });
  const provider = select([["", t("create.provider.auto")]], draft.provider);
  const fps = h("input", { type: "number", min: 1, max: 60, step: 1, value: draft.fps ?? 24 });
  const resolution = select([["", t("create.default")], ...RESOLUTIONS.map((r) => [r, r])],
    draft.resolution);
  const negative = h("input", { type: "text", maxlength: 2000, value: draft.negative_prompt || "" });
  const seed = h("input", { type: "number", min: -1, step: 1, value: draft.seed ?? "" });

  // Image-to-video: a file (sent inline as a data: URL; the gateway has no upload endpoint) or a URL.
  const imageFile = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
  const imageUrl = h("input", {
    type: "url", placeholder: "https://…", value: draft.image_url?.startsWith("http") ? draft.image_url : "",
  });
  const imagePreview = h("img", { class: "thumb", alt: "", hidden: true });
  let inlineImage = draft.image_url?.startsWith("data:image/") ? draft.image_url : null;
  const showImage = () => {
    const src = inlineImage || imageUrl.value.trim();
    imagePreview.hidden = !src;
    if (src) imagePreview.src = src;
  };
  imageFile.addEventListener("change", async () => {
    showError("");
    const file = imageFile.files[0];
    inlineImage = null;
    if (file) {
      try {
        inlineImage = await shrinkImage(file);
      } catch (exc) {
        showError(t("create.image.bad", { message: exc.message }));
      }
    }
    showImage();
  });
  imageUrl.addEventListener("input", () => { inlineImage = null; imageFile.value = ""; showImage(); });
  showImage();

  // Shots for a long video (optional): one row per shot.
  const shotList = h("ol", { class: "shots" });
  const addShot = (shot = {}) => {
    if (shotList.children.length >= MAX_SHOTS) return;
    const text = h("textarea", { rows: 2, maxlength: 2000, value: shot.prompt || "",
      "aria-label": t("create.shots.prompt") });
    const secs = h("input", { type: "number", min: 0.5, max: 60, step: 0.5,
      value: shot.duration_ms ? shot.duration_ms / 1000 : "", "aria-label": t("create.shots.seconds"),
      placeholder: t("create.shots.seconds") });
    const row = h("li", { class: "shot" }, text, secs,
      h("button", { type: "button", class: "ghost", "aria-label": t("create.shots.remove"),
        onclick: () => { row.remove(); text.dispatchEvent(new Event("input", { bubbles: true })); } },
      "✕"));
    shotList.append(row);
    return text;
  };
  for (const shot of draft.shots || []) addShot(shot);
  const readShots = () => [...shotList.children].map((row) => {
    const [text, secs] = row.querySelectorAll("textarea, input");
    const item = { prompt: text.value.trim() };
    if (secs.value) item.duration_ms = Math.round(Number(secs.value) * 1000);
    return item;
  }).filter((shot) => shot.prompt);

  // "Expand first": preview what the gateway would send, and optionally generate with it.
  const expansion = h("div", { class: "expansion", hidden: true });
  const expandedText = h("textarea", { rows: 6, maxlength: 2000, "aria-label": t("create.expand.text") });
  const useExpansion = h("input", { type: "checkbox", checked: true });
  let expansionResult = null;
  let expandedFrom = null;
  const expansionInputs = () => JSON.stringify([prompt.value, template.value, style.value,
    platform.value, provider.value, negative.value]);
  const expandButton = h("button", { type: "button", class: "secondary" }, t("create.expand"));
  expandButton.addEventListener("click", async () => {
    showError("");
    if (!prompt.value.trim()) {
      prompt.focus();
      return;
    }
    expandButton.disabled = true;
    try {
      expansionResult = await api("v1/prompts/expand", {
        method: "POST",
        body: compact({
          prompt: prompt.value, template: template.value, style: style.value,
          platform: platform.value, provider: provider.value, negative_prompt: negative.value,
        }),
        signal,
      });
      expandedText.value = expansionResult.expanded_prompt;
      expandedFrom = expansionInputs();
      replace(expansion,
        h("div", { class: "row-between" },
          h("strong", {}, t("create.expand.title")),
          h("span", { class: "chip" }, t(`expanded_by.${expansionResult.expanded_by}`, {},
            expansionResult.expanded_by))),
        expandedText,
        (expansionResult.warnings || []).map((w) => h("p", { class: "alert warn" }, w)),
        h("label", { class: "check" }, useExpansion, t("create.expand.use")));
      expansion.hidden = false;
    } catch (exc) {
      if (exc.name !== "AbortError") showError(describe(exc));
    } finally {
      expandButton.disabled = false;
    }
  });

  const generate = h("button", { type: "submit", class: "primary", testid: "generate" }, t("create.generate"));

  const form = h("form", { class: "card create-form", novalidate: true },
    h("h1", {}, t("create.title")),
    h("div", { class: "field" },
      h("label", { class: "label", for: "prompt" }, t("create.prompt")), prompt, counter),
    h("div", { class: "row" },
      field(t("create.template"), template), field(t("create.style"), style),
      field(t("create.platform"), platform)),
    h("div", { class: "row" },
      field(t("create.ratio"), ratio), field(t("create.duration"), duration),
      field(t("create.provider"), provider)),
    h("details", { open: !!(draft.image_url) },
      h("summary", {}, t("create.image")),
      h("div", { class: "row" },
        field(t("create.image.file"), imageFile, t("create.image.hint")),
        field(t("create.image.url"), imageUrl)),
      imagePreview),
    h("details", { open: (draft.shots || []).length > 0 },
      h("summary", {}, t("create.shots")),
      h("p", { class: "hint" }, t("create.shots.hint")),
      shotList,
      h("button", { type: "button", class: "secondary",
        onclick: () => addShot()?.focus() }, t("create.shots.add"))),
    h("details", {},
      h("summary", {}, t("create.more")),
      h("div", { class: "row" },
        field(t("create.fps"), fps), field(t("create.resolution"), resolution),
        field(t("create.seed"), seed)),
      field(t("create.negative"), negative)),
    expansion,
    alert,
    h("div", { class: "actions" }, generate, expandButton));

  const panel = h("section", { class: "card result", "aria-live": "polite", hidden: true });

  replace(main, h("div", { class: "create-grid" }, form, panel));

  // Keep the draft across navigation and language switches.
  form.addEventListener("input", (event) => {
    count();
    // A preview of other inputs than these is stale: drop it rather than generate from it.
    if (expandedFrom && event.target !== expandedText && expansionInputs() !== expandedFrom) {
      expansion.hidden = true;
      expandedFrom = null;
    }
    Object.assign(draft, {
      prompt: prompt.value, template: template.value, style: style.value, platform: platform.value,
      aspect_ratio: ratio.value, duration_s: duration.value, provider: provider.value, fps: fps.value,
      resolution: resolution.value, negative_prompt: negative.value, seed: seed.value,
      image_url: inlineImage || imageUrl.value.trim(), shots: readShots(),
    });
  });

  // A platform preset fills in its shape, so what the form shows is what will be sent.
  let platforms = [];
  platform.addEventListener("change", () => {
    const preset = platforms.find((p) => p.name === platform.value);
    if (!preset) return;
    if (preset.aspect_ratio) ratio.value = preset.aspect_ratio;
    if (preset.duration_ms) duration.value = preset.duration_ms / 1000;
    if (preset.resolution) resolution.value = preset.resolution;
    form.dispatchEvent(new Event("input"));
  });

  state.once("v1/prompts/catalog").then((catalog) => {
    platforms = catalog.platforms || [];
    fill(template, catalog.templates || [], draft.template, (p) => p.title || p.name);
    fill(style, catalog.styles || [], draft.style, (p) => p.name);
    fill(platform, platforms, draft.platform, (p) => p.name);
  }).catch((exc) => showError(describe(exc)));
  // The configured providers this token may use (a managed token may be limited to some).
  Promise.all([state.once("v1/providers"), state.once("v1/me").catch(() => ({}))]).then(([list, me]) => {
    const allowed = Array.isArray(me.providers) ? new Set(me.providers) : null;
    fill(provider, (list.data || []).filter((p) => !allowed || allowed.has(p.name)), draft.provider,
      (p) => (p.default ? `${p.name} (${t("create.provider.default")})` : p.name));
  }).catch(() => {
    // An older gateway without /v1/providers: the field stays on automatic routing.
  });

  // --- submit and follow ----------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    if (!prompt.value.trim()) {
      showError(t("create.prompt.required"));
      prompt.focus();
      return;
    }
    const body = compact({
      prompt: prompt.value,
      aspect_ratio: ratio.value,
      duration_ms: Math.round(Number(duration.value) * 1000),
      fps: Number(fps.value) || undefined,
      provider: provider.value,
      template: template.value,
      style: style.value,
      platform: platform.value,
      resolution: resolution.value,
      negative_prompt: negative.value.trim(),
      seed: seed.value === "" ? undefined : Number(seed.value),
      image_url: inlineImage || imageUrl.value.trim(),
    });
    const shots = readShots();
    if (shots.length) body.shots = shots;
    if (expandedFrom && !expansion.hidden && useExpansion.checked && expandedText.value.trim()) {
      // Generate exactly the previewed text: no second expansion, presets already applied.
      body.metadata = { idea: body.prompt };
      body.prompt = expandedText.value.trim();
      body.expand_prompt = false;
      delete body.template;
      delete body.style;
      delete body.platform;
      if (!body.negative_prompt && expansionResult.negative_prompt) {
        body.negative_prompt = expansionResult.negative_prompt;
      }
    }
    generate.disabled = true;
    try {
      const created = await api("v1/tasks", {
        method: "POST", body, signal, headers: { "Idempotency-Key": randomKey() },
      });
      const task = created.data ? created.data[0] : created;
      state.current = task.id;
      follow(task);
    } catch (exc) {
      if (exc.name === "AbortError") return;
      showError(exc.status === 413 && body.image_url?.startsWith("data:")
        ? t("create.image.body_limit", { message: exc.message }) : describe(exc));
    } finally {
      generate.disabled = false;
    }
  });

  let following = null;
  function follow(task) {
    following?.abort();
    following = new AbortController();
    signal.addEventListener("abort", () => following.abort(), { once: true });
    const view = progressView(task, async () => {
      try {
        await api(`v1/tasks/${encodeURIComponent(task.id)}`, { method: "DELETE", signal });
      } catch (exc) {
        if (exc.name !== "AbortError") showError(describe(exc));
      }
    });
    replace(panel, view.root);
    panel.hidden = false;
    watchTask(task.id, { initial: task, signal: following.signal, onUpdate: view.update })
      .then((final) => {
        view.update(final);
        if (final.status === "failed" && final.error) {
          showError(`${final.error.code}: ${final.error.message}`);
        }
      })
      .catch((exc) => {
        if (exc.name !== "AbortError") showError(describe(exc));
      });
  }

  if (state.current) {
    api(`v1/tasks/${encodeURIComponent(state.current)}`, { signal })
      .then(follow)
      .catch(() => { state.current = null; });
  }
}

/** The progress card: status, stage, bar, queue/ETA when the gateway says, then the player. */
export function progressView(task, onCancel, { heading = true } = {}) {
  const bar = h("progress", { testid: "progress", max: 100, value: 0 });
  const percent = h("span", { class: "percent" });
  const chip = h("span");
  const stage = h("span", { class: "muted" });
  const extra = h("p", { class: "muted small" });
  const cancel = h("button", { type: "button", class: "secondary danger" }, t("task.cancel"));
  cancel.addEventListener("click", () => { cancel.disabled = true; onCancel(); });
  const body = h("div", { class: "result-body" });
  const root = h("div", {},
    heading
      ? h("div", { class: "row-between" },
        h("h2", {}, h("a", { href: `#/tasks/${task.id}` }, t("create.task")), " ",
          h("code", { class: "small" }, task.id)),
        chip)
      : null,
    h("div", { class: "progress-line" }, bar, percent),
    h("p", {}, stage),
    extra,
    h("div", { class: "actions" }, cancel),
    body);

  let shown = null;
  function update(next, mode) {
    const done = next.status === "succeeded";
    const value = done ? 100 : Math.max(0, Math.min(100, Number(next.progress) || 0));
    bar.value = value;
    bar.setAttribute("aria-label", t("task.progress"));
    if (mode) bar.dataset.liveMode = mode;
    percent.textContent = `${value}%`;
    replace(chip, statusChip(next.status));
    stage.textContent = next.status === "running" && next.stage
      ? t(`stage.${next.stage}`, {}, next.stage)
      : t(`status.${next.status}.long`, {}, "");
    const notes = [];
    if (next.queue_position != null) notes.push(t("task.queue", { n: next.queue_position }));
    if (next.eta_s != null && !TERMINAL.has(next.status)) {
      notes.push(t("task.eta", { s: Math.max(0, Math.round(next.eta_s)) }));
    }
    if (next.progress_estimated) notes.push(t("task.estimated"));
    extra.textContent = notes.join(" · ");
    cancel.hidden = !onCancel || TERMINAL.has(next.status);
    // Once: every read signs the URL afresh, and a new src would restart the video.
    if (next.status === "succeeded" && next.video_url && shown !== next.id) {
      shown = next.id;
      replace(body, player(next));
    }
  }
  update(task);
  return { root, update };
}

function select(options, current) {
  const el = h("select", {});
  for (const [value, label] of options) el.append(h("option", { value }, label));
  if (current) el.value = current;
  return el;
}

function fill(el, items, current, label) {
  for (const item of items) el.append(h("option", { value: item.name }, label(item)));
  if (current) el.value = current;
}

function compact(body) {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== "" && v !== undefined && v !== null));
}

export function describe(exc) {
  if (exc instanceof ApiError) {
    return exc.status ? `${exc.status} ${exc.code}: ${exc.message}` : t("error.network", { message: exc.message });
  }
  return t("error.generic", { message: exc.message || String(exc) });
}

/** The create form's fields from a task's stored request (retry and "edit and retry"). */
export function fromRequest(request) {
  return {
    prompt: request.prompt || "",
    template: request.template || "",
    style: request.style || "",
    platform: request.platform || "",
    aspect_ratio: request.aspect_ratio || "16:9",
    duration_s: request.duration_ms ? request.duration_ms / 1000 : 5,
    provider: request.provider || "",
    fps: request.fps || 24,
    resolution: request.resolution || "",
    negative_prompt: request.negative_prompt || "",
    seed: request.seed ?? "",
    image_url: request.image_url && !request.image_url.endsWith("…") ? request.image_url : "",
    shots: Array.isArray(request.shots) ? request.shots : [],
  };
}

function randomKey() {
  if (crypto.randomUUID) return `console-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Read an image file as a data: URL small enough for one request (re-encoded if needed). */
async function shrinkImage(file) {
  const asIs = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
  if (asIs.length <= MAX_IMAGE_CHARS) return asIs;
  const bitmap = await createImageBitmap(file);
  let scale = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
  for (let round = 0; round < 6; round += 1) {
    const canvas = h("canvas", {
      width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale),
    });
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const url = canvas.toDataURL("image/jpeg", 0.85);
    if (url.length <= MAX_IMAGE_CHARS) return url;
    scale *= 0.75;
  }
  throw new Error(t("create.image.too_big"));
}
