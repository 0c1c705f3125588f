"""An OpenAI-compatible judge that misbehaves on purpose, run as its own process by the tests:
``python -m uvicorn misbehaving_judge:app --app-dir tests/eval/servers --port N``.

What it does depends on the text it is asked to judge: "garbage" → a reply with no JSON in it,
"five-hundred" → HTTP 500, "slow" → answers after 1.5 s (past the client's timeout), "broken-body"
→ 200 with a body that is not a chat completion; anything else → a well-formed verdict. Pairwise:
the answer that starts with "good" wins, in either order. Pointwise: 4s, or 2s for an answer
starting with "bad".
"""

import asyncio
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

app = FastAPI()


def _reply(text: str) -> dict:
    return {"id": "j", "object": "chat.completion", "model": "judge",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


@app.post("/v1/chat/completions")
async def chat(req: Request):
    prompt = (await req.json())["messages"][0]["content"]
    if "garbage" in prompt:
        return _reply("I think both answers are lovely.")
    if "five-hundred" in prompt:
        return JSONResponse({"error": {"message": "judge crashed"}}, status_code=500)
    if "broken-body" in prompt:
        return PlainTextResponse("<html>proxy error</html>")
    if "slow" in prompt:
        await asyncio.sleep(1.5)
    if "Answer A:" in prompt:
        a = prompt.split("Answer A:")[1].split("Answer B:")[0].strip()
        return _reply(json.dumps({"winner": "A" if a.startswith("good") else "B", "reason": "starts with good"}))
    answer = prompt.split("Answer:")[-1].split("Reply with")[0].strip()
    s = 2 if answer.startswith("bad") else 4
    return _reply(json.dumps({"accuracy": s, "relevance": s, "fluency": s, "professionalism": s, "reason": "fine"}))
