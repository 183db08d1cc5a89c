"""Add-ons: modules that add routes and a card to the app without editing server.py.

server.py imports every module here whose name does not start with "_", in name order, once the app exists.
A module may define:

    router = APIRouter(prefix="/mine")   # fasthtml.common.APIRouter; its routes join the app
    def card(): ...                      # an FT shown in the workspace, below the tasks

An add-on never imports server (a notebook can import it without starting the app). Its data lives under
`Path(__file__).resolve().parent.parent / "data"`. Work that takes a while belongs in a tool under tools/,
which runs in a process of its own with progress, cancel and a history per profile.
"""
