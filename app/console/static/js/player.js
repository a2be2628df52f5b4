// The finished video: a <video> with its poster and subtitles, download and copy-link buttons.

import { copyButton, h } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

export function player(task) {
  const video = h("video", {
    testid: "video-player", controls: true, playsinline: true, preload: "auto",
    src: task.video_url, poster: task.thumbnail_url || null,
  });
  if (task.subtitles_url) {
    video.append(h("track", {
      kind: "subtitles", src: task.subtitles_url, default: true,
      srclang: /[\u4e00-\u9fff]/.test(task.prompt || "") ? "zh" : "en", label: t("player.subtitles"),
    }));
  }
  const filename = task.filename || `${task.id}.mp4`;
  return h("figure", { class: "player" },
    video,
    h("figcaption", { class: "muted" }, filename,
      task.expires_at ? ` · ${t("player.expires", { when: formatDateTime(task.expires_at) })}` : ""),
    h("div", { class: "actions" },
      h("a", { class: "button primary", href: task.video_url, download: filename }, t("player.download")),
      copyButton(t("player.copy"), task.video_url, t("copied")),
      task.thumbnail_url
        ? h("a", { class: "button secondary", href: task.thumbnail_url, target: "_blank", rel: "noopener" },
          t("player.thumbnail"))
        : null,
      task.subtitles_url
        ? h("a", { class: "button secondary", href: task.subtitles_url, download: true }, t("player.vtt"))
        : null));
}

/** The status word as a coloured chip. */
export function statusChip(status) {
  return h("span", { class: `chip status-${status || "unknown"}` }, t(`status.${status}`, {}, status));
}
