"""The chat over the real wire: any JSON string a page sends gets a reply or a note and the chat goes on, text
Ollama or the app cannot encode arrives replaced, and a page that stops reading a long reply is closed."""
from __future__ import annotations

import contextlib

import httpx
from websockets.sync.client import connect

from wire import send_text_frame, silent_socket

# --- chat: any string JSON accepts gets a reply or a note -----------------------------------------------


CHAT_WAIT = 60.0  # a server's first chat imports ollama first: seconds, on a loaded machine


def settle(ws) -> None:
    """Stop whatever may still stream; the chat must answer, so a jammed reply fails here."""
    ws.send('{"type": "stop"}')
    while "Stopped." not in (frame := ws.recv(timeout=CHAT_WAIT)) and "Nothing to stop" not in frame:
        pass


def replies(ws, frame: str) -> list[str]:
    """Send a raw frame; the frames up to the end of its reply, or up to its note."""
    ws.send(frame)
    frames = []
    while not frames or ("message note" not in frames[-1] and ">!</span>" not in frames[-1]):
        frames.append(ws.recv(timeout=CHAT_WAIT))
    return frames


ODD_FRAMES = [
    (r'{"type": "chat", "msg": "x\ud800y"}', "x\ufffdy"),
    (r'{"type": "chat", "msg": "\udfff"}', "\ufffd"),
    (r'{"type": "chat", "msg": "pair \ud83d\ude00 and lone \ude00"}', "pair \U0001F600 and lone \ufffd"),
    (r'{"type": "chat", "msg": "nul \u0000 inside"}', "nul \x00 inside"),
    ('{"type": "chat", "msg": "' + "long " * 12_000 + '"}', "long long"),
    (r'{"type": "\ud800"}', "Unknown frame type '\ufffd'"),
    (r'{"type": ["chat"]}', "Unknown frame type:"),
    (r'{"type": 7}', "Unknown frame type:"),
    (r'{"type": "chat", "msg": 12}', "Type a message first"),
    (r'{"type": "chat", "msg": [1]}', "Type a message first"),
    (r'{"type": "chat", "msg": true}', "Type a message first"),
    (r'"\ud800"', "Unknown frame type:"),
]


def test_any_json_string_gets_a_reply_or_a_note_and_the_chat_goes_on(app_server, fake_ollama):
    with app_server() as (url, _):
        for i, (frame, answer) in enumerate(ODD_FRAMES):
            with connect(url.replace("http", "ws") + f"/ws?tab=odd{i}") as ws:
                frames = replies(ws, frame)
                assert answer in "".join(frames) and "Traceback" not in "".join(frames), frame
                settle(ws)
                frames = replies(ws, '{"type": "chat", "msg": "and now?"}')
                assert "still streaming" not in "".join(frames) and ">!</span>" in frames[-1], frame
            history = fake_ollama.requests[-1]["messages"]
            assert all(m["content"].encode("utf-8") for m in history)  # a lone surrogate cannot be encoded


def test_unencodable_text_from_ollama_or_the_app_reaches_the_page_replaced(app_server, fake_ollama):
    fake_ollama.tokens = ["bad \ud800 token", "!"]
    with app_server() as (url, _), connect(url.replace("http", "ws") + "/ws?tab=odd") as ws:
        assert "bad \ufffd token" in "".join(replies(ws, '{"type": "chat", "msg": "hi"}'))
        settle(ws)
        assert httpx.post(f"{url}/test/send", params={"tab": "odd"}).text == "sent"
        assert 'id="odd">odd \ufffd text' in ws.recv(timeout=5)
        fake_ollama.tokens = ["fine", "!"]
        assert ">fine</span>" in "".join(replies(ws, '{"type": "chat", "msg": "again"}'))


def test_a_page_that_stops_reading_a_long_reply_is_closed_and_the_reply_stops(app_server, fake_ollama):
    fake_ollama.tokens = ["y" * 60_000] * 800
    with app_server() as (url, _), contextlib.closing(silent_socket(url, "frozen")) as sock:
        send_text_frame(sock, '{"type": "chat", "msg": "tell me everything"}')
        assert fake_ollama.client_gone.wait(60)
        with connect(url.replace("http", "ws") + "/ws?tab=awake") as other:
            other.send('{"type": "stop"}')
            assert "Nothing to stop" in other.recv(timeout=5)
