// Ready-to-paste client code for a base URL and token. Pure functions: text in, text out.

export const SAMPLE = {
  prompt: "a paper boat drifting down a rainy street, cinematic",
  aspect_ratio: "16:9",
  duration_ms: 2000,
  fps: 12,
};

/** Quote for a POSIX shell: single quotes, with embedded ones closed and escaped. */
export function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

/** A Python string literal (JSON's escaping is valid Python). */
function py(text) {
  return JSON.stringify(String(text));
}

function pyDict(body) {
  const items = Object.entries(body).map(([key, value]) =>
    `        ${py(key)}: ${typeof value === "string" ? py(value) : JSON.stringify(value)},`);
  return `{\n${items.join("\n")}\n    }`;
}

export function curlSync(base, token, body = SAMPLE) {
  return [
    `curl -sS -X POST ${shellQuote(`${base}/generate-video`)} \\`,
    `  -H ${shellQuote(`Authorization: Bearer ${token}`)} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].join("\n");
}

export function curlAsync(base, token, body = SAMPLE) {
  const auth = shellQuote(`Authorization: Bearer ${token}`);
  return [
    "# 1. Submit: answers 202 at once with the task (id, status).",
    `curl -sS -X POST ${shellQuote(`${base}/v1/tasks`)} \\`,
    `  -H ${auth} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -H 'Idempotency-Key: my-run-1' \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
    "",
    "# 2. Wait for it: returns as soon as the task ends (repeat while queued/running).",
    `curl -sS -H ${auth} ${shellQuote(`${base}/v1/tasks/TASK_ID?wait_s=25`)}`,
  ].join("\n");
}

export function pythonHttp(base, token, body = SAMPLE) {
  return `import httpx

BASE_URL = ${py(base)}
TOKEN = ${py(token)}  # better: os.environ["VGW_TOKEN"]

with httpx.Client(
    base_url=BASE_URL, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
) as client:
    response = client.post("/v1/tasks", json=${pyDict(body)})
    response.raise_for_status()
    task = response.json()
    while task["status"] in ("queued", "running"):
        # Long-poll: returns as soon as the task ends, or after 25 s.
        task = client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 25}).json()
    if task["status"] != "succeeded":
        raise SystemExit(f"{task['status']}: {task['error']}")
    print(task["video_url"])
`;
}

export function pythonOpenAI(base, token, model = "preview") {
  return `from openai import OpenAI

client = OpenAI(base_url=${py(`${base}/v1`)}, api_key=${py(token)})

video = client.videos.create_and_poll(
    model=${py(model)},  # a provider name, or "provider/model"
    prompt=${py(SAMPLE.prompt)},
    seconds="4",
    size="1280x720",
)
print(video.status, video.progress)
if video.status == "completed":
    client.videos.download_content(video.id).write_to_file("video.mp4")
`;
}

/** The Dify HTTP Request node, field by field, as in the shipped workflows: [key, value]. */
export function difyNode(base) {
  return [
    ["env_base", `GATEWAY_BASE_URL = ${base}`],
    ["env_token", "GATEWAY_TOKEN (secret)"],
    ["method", "POST"],
    ["url", "{{#env.GATEWAY_BASE_URL#}}/generate-video"],
    ["auth", "API-Key · Bearer · {{#env.GATEWAY_TOKEN#}}"],
    ["headers", "Idempotency-Key: {{#sys.workflow_run_id#}}\nAccept: application/json"],
    ["body", "JSON · {{#build_request.payload#}}"],
    ["timeout", "connect 10 · read 270 · write 30"],
    ["retry", "3 × 1000 ms"],
    ["errors", "fail-branch"],
  ];
}

export const DIFY_PAYLOAD_CODE = `def main(prompt: str, aspect_ratio: str, duration_ms: int, fps: int) -> dict:
    return {"payload": {
        "prompt": prompt,
        "aspect_ratio": aspect_ratio or "16:9",
        "duration_ms": int(duration_ms or 5000),
        "fps": int(fps or 24),
        "wait_s": 240,
    }}
`;
