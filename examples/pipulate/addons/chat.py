"""The chat pane: a conversation with a local Ollama, streamed into the page over its socket, per tab.

ollama is imported by the first message, in a worker thread, not at start-up: importing it costs about a third
of a second, and many runs never chat. Set OLLAMA_HOST and OLLAMA_MODEL to choose the server and the model.
"""
import asyncio
import importlib
import logging
import os
import secrets
from collections import deque
from dataclasses import dataclass, field

from fasthtml.common import H2, Button, Div, Fieldset, Form, Input, Section, Span, Strong

from core import hidden, live
from core.live import Tab
from toolbox import scrub

OLLAMA_HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
OLLAMA_MODEL = os.environ.get("OLLAMA_MODEL", "")
CHAT_TURNS = 20

with hidden("rich"):  # httpx imports its command-line client when rich is installed: about 0.1 s of CPU
    import httpx

log = logging.getLogger(__name__)
CLOSING: set = set()  # clients of gone tabs, closing their connections


@dataclass(eq=False)
class Chat:
    """A tab's conversation: its bounded history, the reply streaming into it, and the client, made on the first
    message (building one takes ~20 ms)."""
    history: deque = field(default_factory=lambda: deque(maxlen=2 * CHAT_TURNS))
    reply: asyncio.Task | None = None
    llm: object = None


def chat_of(tab: Tab) -> Chat:
    if (chat := tab.state.get("chat")) is None:
        chat = tab.state["chat"] = Chat()
    return chat


def ChatMessage(role: str, text: str = "", id: str | None = None):
    return Div(Strong(role), Div(text, id=id, cls="reply"), cls=f"message {role}")


def ChatAppend(*messages):
    return Div(*messages, id="chat-log", hx_swap_oob="beforeend")


def ChatNote(text: str):
    return ChatAppend(Div(text, cls="message note error", role="alert"))


def ChatPane():
    return Section(
        H2("Chat"),
        Div(id="chat-log", aria_live="polite"),
        Div(Form(Fieldset(Input(name="msg", placeholder="Ask the local model…", aria_label="Message"),
                          Input(type="hidden", name="type", value="chat"), Button("Send"), role="group"),
                 ws_send=True),  # app.js clears it once sent
            Form(Input(type="hidden", name="type", value="stop"), Button("Stop", cls="secondary"), ws_send=True),
            cls="chat-controls"),
        id="chat")


async def best_model(client) -> str:
    """The largest installed chat model; '' when there is none.

    Bigger models answer better; set OLLAMA_MODEL to trade quality for speed. Embedding models cannot chat.
    """
    def chats(m):
        return "embed" not in (m.model or "") and "bert" not in ((m.details and m.details.family) or "")

    largest = max(filter(chats, (await client.list()).models), key=lambda m: m.size or 0, default=None)
    return largest.model if largest else ""


def ollama_problem(error: Exception, model: str) -> str:
    """One sentence a user can act on, for whatever stopped a reply."""
    import ollama  # already imported by reply()

    if isinstance(error, (ConnectionError, httpx.ConnectError)):
        return f"Ollama is not reachable at {OLLAMA_HOST}: start it with `ollama serve`, then send again."
    if isinstance(error, ollama.ResponseError) and error.status_code == 404:
        return f"The model {model} is not installed: run `ollama pull {model}` or set OLLAMA_MODEL to an installed one."
    if isinstance(error, ollama.ResponseError):
        return f"Ollama answered with an error: {error.error}"
    return f"The reply from Ollama broke off midway ({error or type(error).__name__}); send again."


async def reply(tab: Tab, chat: Chat, prompt: str) -> None:
    """Stream the model's answer into the tab chunk by chunk, as Ollama produces it."""
    ollama = await asyncio.to_thread(importlib.import_module, "ollama")
    reply_id = f"reply-{secrets.token_hex(6)}"
    chunks, model = [], OLLAMA_MODEL
    try:
        tab.send(ChatAppend(ChatMessage("you", prompt), ChatMessage("assistant", id=reply_id)))
        chat.history.append({"role": "user", "content": prompt})
        client = chat.llm = chat.llm or ollama.AsyncClient(host=OLLAMA_HOST)
        model = model or await best_model(client)
        if not model:
            return tab.send(ChatNote("Ollama has no model yet: run `ollama pull llama3.2`, then send again."))
        finished = False
        async for part in await client.chat(model=model, messages=list(chat.history), stream=True):
            if content := scrub(part.message.content or ""):
                chunks.append(content)
                tab.send(Span(content, hx_swap_oob=f"beforeend:#{reply_id}"))
            finished = part.done
        if not finished:
            raise httpx.RemoteProtocolError("the stream ended before Ollama said it was done")
    except asyncio.CancelledError:
        tab.send(ChatNote("Stopped."))
        raise
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError) as error:
        tab.send(ChatNote(ollama_problem(error, model)))
    except Exception:
        log.exception("chat reply failed")
        tab.send(ChatNote("The reply failed: the server's log says why. Send again."))
    finally:
        if chunks:
            chat.history.append({"role": "assistant", "content": "".join(chunks)})
        chat.reply = None


def aside():
    return ChatPane()


def on_chat(tab: Tab, frame: dict) -> None:
    """{"type": "chat", "msg": ...}: start a reply, unless one is streaming."""
    chat = chat_of(tab)
    prompt = frame.get("msg")
    if not isinstance(prompt, str) or not (prompt := scrub(prompt).strip()):
        return tab.send(ChatNote("Type a message first."))
    if chat.reply:
        return tab.send(ChatNote("A reply is still streaming: wait for it or press Stop."))
    chat.reply = asyncio.create_task(reply(tab, chat, prompt))


def on_stop(tab: Tab, frame: dict) -> None:
    """{"type": "stop"}: cut the streaming reply short."""
    if not (reply := chat_of(tab).reply):
        return tab.send(ChatNote("Nothing to stop."))
    reply.cancel()


def tab_closed(tab: Tab) -> None:
    """Stop the reply streaming into a page that has gone, and let go of its client's connections."""
    if chat := tab.state.pop("chat", None):
        if chat.reply:
            chat.reply.cancel()
        if chat.llm:
            closing = asyncio.create_task(chat.llm.close())
            CLOSING.add(closing)  # the loop keeps only a weak reference to a task: this one must finish
            closing.add_done_callback(CLOSING.discard)


live.take_frames({"chat": on_chat, "stop": on_stop}, note=ChatNote, closed=tab_closed)
