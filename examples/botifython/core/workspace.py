"""The main page: the profile menu, the tools, the tasks and the add-ons' cards; the routes that change profiles."""
import inspect

from fasthtml.common import *

from core.auth import current_user
from core.db import Profile, profiles, transaction
from core.profiles import (NO_NAME, choose_profile, current_profile, delete_profile, missing_profile, profiles_of,
                           text_error)
from core.tasks import TaskList
from core.tool_pages import ToolMenu
from core.ui import Error, Page
from settings import STATIC, TITLE

ADDONS: list = []  # the add-on modules, imported by create_app()
router = APIRouter()


def ProfileMenu(user: str | None, profile: Profile, error: str = ""):
    """The profiles the user may switch to (in an admin's menu, another user's carries its owner's name), and the
    forms that change the one shown."""
    def label(p: Profile) -> str:
        return p.name if not user or p.owner == user else f"{p.name} · {p.owner or 'no owner'}"

    options = [Option(label(p), value=p.id, selected=p.id == profile.id) for p in profiles_of(user)]
    swap = dict(hx_target="#workspace", hx_swap="outerHTML")
    return Section(
        Select(*options, name="id", hx_post="/profiles/switch", aria_label="Profile", **swap),
        Form(Fieldset(Input(name="name", placeholder="New profile"), Button("Create"), role="group"),
             hx_post="/profiles", **swap),
        Form(Fieldset(Input(name="name", value=profile.name, aria_label="Profile name"), Button("Rename"), role="group"),
             hx_post=f"/profiles/{profile.id}/rename", **swap),
        Button("Delete profile", hx_delete=f"/profiles/{profile.id}", cls="secondary",
               hx_confirm=f"Delete {profile.name} and everything in it?", **swap),
        Error(error, id="profile-error"),
        id="profiles")


def Workspace(sess: dict, error: str = ""):
    """The workspace of the browser's current profile (which current_profile() keeps its user's own)."""
    profile = current_profile(sess)
    return Div(
        ProfileMenu(current_user(sess), profile, error),
        *(card(profile) if "profile" in inspect.signature(card).parameters else card() for card in hooks("card")),
        ToolMenu(),
        Section(H2("Tasks"), TaskList(profile.id), id="tasks"),
        id="workspace")


def hooks(name: str) -> list:
    """The add-ons' functions of this name, in the add-ons' order."""
    return [hook for addon in ADDONS if (hook := getattr(addon, name, None))]


@router.get("/favicon.ico")
def favicon():
    """Browsers ask for this whatever the page names: the same icon, rather than a 404 in the log each time."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/")
def index(sess, bodykw):
    """The workspace, with the add-ons' panes (the chat) beside it."""
    workspace = Workspace(sess)
    asides = [aside() for aside in hooks("aside")]
    return Page(bodykw, TITLE, Div(workspace, *asides, cls="layout") if asides else workspace,
                user=current_user(sess))


@router.post("/profiles")
def profiles_create(sess, name: str = ""):
    if not (error := text_error(name, empty=NO_NAME)):
        choose_profile(sess, profiles.insert(name=name.strip(), owner=current_user(sess)).id)
    return Workspace(sess, error)


@router.post("/profiles/switch")
def profiles_switch(sess, id: int = 0):
    if not (error := missing_profile(sess, id)):
        choose_profile(sess, id)
    return Workspace(sess, error)


@router.post("/profiles/{id}/rename")
def profiles_rename(sess, id: int, name: str = ""):
    with transaction():
        if not (error := missing_profile(sess, id) or text_error(name, empty=NO_NAME)):
            profiles.update(id=id, name=name.strip())
    return Workspace(sess, error)


@router.delete("/profiles/{id}")
def profiles_delete(sess, id: int):
    return Workspace(sess, delete_profile(sess, id))
