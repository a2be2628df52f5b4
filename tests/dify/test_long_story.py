"""``dify/video_long_story.yml`` on Dify's engine (graphon) against the live gateway: a story
idea, or the user's own shots, becomes one long video with subtitles, a poster and a caption."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import GatewayFactory
from tests.dify import engine

SMALL = {"preview": {"height": 120}}


def test_own_shots_one_per_line_make_one_video_with_subtitles(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    shots = "1. 港口的清晨,渔船出海\n- 正午的集市,人来人往\n\n夜晚的灯塔亮起\n"
    with gateway_factory(SMALL) as gw:
        result = engine.run(
            engine.LONG_STORY,
            base_url=gw.base_url,
            token=gw.token,
            inputs={
                "prompt": "海港小镇的一天",
                "shots": shots,
                "duration_ms": 1500,
                "fps": 8,
                "platform": "douyin",
            },
        )
        assert result.status == "succeeded", result.describe()
        outputs = result.outputs
        task = gw.client.get(f"/v1/tasks/{outputs['task_id']}").json()
        vtt = httpx.get(outputs["subtitles_url"], timeout=30).text
        poster = httpx.get(outputs["thumbnail_url"], timeout=30)
        # Three shots sharing 1.5 s: 4 frames each at 8 fps, one video.
        engine.assert_playable_mp4(outputs["video_url"], tmp_dir=tmp_path, frames=12)

    assert [s["prompt"] for s in task["shots"]] == [
        "港口的清晨,渔船出海",
        "正午的集市,人来人往",
        "夜晚的灯塔亮起",
    ]
    assert task["request"]["caption"] is True and task["request"]["platform"] == "douyin"
    assert "夜晚的灯塔亮起" in vtt and vtt.count(" --> ") == 3
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert outputs["caption"] == task["caption"] and "#" in outputs["caption"]
    assert outputs["storyboard"].splitlines()[2] == "3. [0.5s] 夜晚的灯塔亮起"


def test_a_story_idea_alone_is_planned_by_the_gateway(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    with gateway_factory(SMALL) as gw:
        result = engine.run(
            engine.LONG_STORY,
            base_url=gw.base_url,
            token=gw.token,
            inputs={"prompt": "a day in a harbour town", "duration_ms": 14000, "fps": 4},
        )
        assert result.status == "succeeded", result.describe()
        task = gw.client.get(f"/v1/tasks/{result.outputs['task_id']}").json()
        # Longer than the preview's 12 s clips: planned as two shots of 7 s.
        engine.assert_playable_mp4(result.outputs["video_url"], tmp_dir=tmp_path, frames=56)

    assert [s["duration_ms"] for s in task["shots"]] == [7000, 7000]
    assert task["params"]["storyboard"]["planned_by"] == "split"
    assert result.outputs["storyboard"].count("\n") == 1
