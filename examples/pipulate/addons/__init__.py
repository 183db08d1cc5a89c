"""Add-ons: modules that add a feature to the app without editing core/.

create_app() imports every module here whose name does not start with "_", in name order. A module may define:

    router = APIRouter()     # fasthtml.common.APIRouter; its routes join the app
    def card(profile): ...   # an FT shown in the workspace (`def card():` works too)
    def aside(): ...         # an FT shown beside the workspace, such as the chat pane

and may call, at import, core.db.table(...) for a table of its own (made on first use; a profile_id column ties
its rows to a profile, deleted with it) and core.live.take_frames(...) to take frames from the page's socket.
todos.py and chat.py, when the demo is rendered, show each of these.

An add-on never imports server (a notebook can import it without starting the app). Work that takes a while
belongs in a tool under tools/, which runs in a process of its own with progress, cancel and a history per
profile.
"""
