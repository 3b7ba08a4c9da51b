"""LoRA Kitchen dashboard: the entry file. ``streamlit run dashboard/app.py`` from the project folder.

It is the frame around every page: it refuses a visit without the dashboard's
key (the address ``bash dashboard/start.sh`` printed, ``?key=…``; see
``dashboard/logic/access.py``), sets the session's defaults once, draws
the sidebar (demo mode), and builds the navigation: Home, one page per stage,
and the instructor's Class page. The pages themselves live in ``views/`` and
only draw; what they compute lives in ``dashboard/logic`` and ``lessons/engine``.

Demo mode (every page open, results from the reference solutions) comes from
the sidebar toggle, an address with ``?demo=1`` (the toggle keeps it there, so a
reload stays in demo mode), ``streamlit run dashboard/app.py -- --demo`` or ``LAB_DEMO=1``.
Nothing heavy happens here: models load only when a page asks for them.

Why ``views/`` and not ``pages/``: Streamlit lists a ``pages/`` folder on its
own, and a freshly started server whose first request was a link to a page
(``/stage4b``) ran that page without this file: no demo mode, no navigation.
"""
from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on the path, not the project: add the project.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import streamlit as st  # noqa: E402

from dashboard.logic.access import AccessError, KEY_HEADER, KEY_PARAM, key_matches, refusal  # noqa: E402
from dashboard.ui import (DEMO_KEY, demo_in_address, demo_requested, open_store,  # noqa: E402
                          report_download_button)
from lessons.engine.progress import PASSED, all_progress  # noqa: E402
from lessons.engine.store_file import StoreDamaged, repair  # noqa: E402

st.set_page_config(page_title="LoRA Kitchen", page_icon="🍳", layout="wide")

# The gate, before the store opens or anything of the learner's is drawn: every other account on a shared server
# reaches this port too, so a visit must present the dashboard's key (dashboard/logic/access.py), in the address
# (?key=, as start.sh printed it) or in the header a proxy that checked the login adds (JupyterHub).
ADDRESS_KEY = "_dashboard_key"  # the key this session's address brought, kept to put it back after a page switch
try:
    _address_key = st.query_params.get(KEY_PARAM) or st.session_state.get(ADDRESS_KEY)
    if key_matches(_address_key):
        st.session_state[ADDRESS_KEY] = _address_key
        # The address keeps the key on every run (a page switch drops the query), so a reload or a link still opens.
        if st.query_params.get(KEY_PARAM) != _address_key:
            st.query_params[KEY_PARAM] = _address_key
    elif not key_matches(st.context.headers.get(KEY_HEADER)):
        st.error(refusal(), icon="🔒")
        st.stop()
except AccessError as problem:  # the key file is another account's, or unsafe: say what to do, open nothing
    st.error(str(problem), icon="🛑")
    st.stop()

# Session defaults, once per session (pages read them; their own keys carry their prefix).
# A reload or a typed address is a new session: ?demo=1 in the address brings demo mode back.
st.session_state.setdefault(DEMO_KEY, demo_in_address(st.query_params.get(DEMO_KEY)) or demo_requested())
# The address follows the mode on every run (a page switch drops the query), so a reload keeps it.
if st.session_state[DEMO_KEY]:
    if st.query_params.get(DEMO_KEY) != "1":
        st.query_params[DEMO_KEY] = "1"
elif DEMO_KEY in st.query_params:
    del st.query_params[DEMO_KEY]


def _copy_toggle() -> None:
    # The toggle has its own key: a widget's state is dropped when a page switch re-creates it,
    # so the mode itself lives under DEMO_KEY, which no widget owns (the address follows it above).
    st.session_state[DEMO_KEY] = st.session_state["_demo_toggle"]


with st.sidebar:
    st.toggle("Demo mode (reference solutions)", value=bool(st.session_state[DEMO_KEY]), key="_demo_toggle",
              on_change=_copy_toggle,
              help="For instructors: opens every page and draws the results with the reference solutions.")
    report_download_button("sidebar_report")

def _repair(path) -> None:
    st.session_state["_store_repaired"] = repair(path)


try:
    progress = all_progress(open_store())
except StoreDamaged as damage:  # every page needs the store: say what happened and offer the repair
    st.error(str(damage))
    st.button("Repair the store now", type="primary", on_click=_repair, args=(damage.path,))
    st.stop()
if "_store_repaired" in st.session_state:
    st.success(f"The store was repaired: {st.session_state.pop('_store_repaired')}.")
demo = bool(st.session_state[DEMO_KEY])


def stage_icon(index: int) -> str:
    """✅ passed, 📝 open to work on, 🔒 locked until the stage before passes."""
    if progress[index].status == PASSED:
        return "✅"
    if demo or index == 0 or progress[index - 1].status == PASSED:
        return "📝"
    return "🔒"


stage_pages = [st.Page(f"views/{item.stage.key}.py", title=f"{item.stage.label} · {item.stage.title.split(':')[0]}",
                       icon=stage_icon(index), url_path=item.stage.key)
               for index, item in enumerate(progress)]


def class_page_listed() -> bool:
    """The Class page is in the menu for the class's instructors only (root, or the group, as the OS says)."""
    from lessons.engine.classroom import ClassError, active_class, is_instructor

    try:
        config = active_class()
    except ClassError:  # LAB_CLASS_DIR names no class: the page itself says so to whoever opens it
        return False
    return config is not None and is_instructor(config)


# Listed for an instructor; for everyone else it is still there, unlisted, so a typed /class reaches the page,
# which says whose it is and reads nothing (views/class_room.py), instead of Streamlit's "page not found".
class_page = st.Page("views/class_room.py", title="Class", icon="🧑‍🏫", url_path="class",
                     visibility="visible" if class_page_listed() else "hidden")
sections = {"LoRA Kitchen": [st.Page("views/home.py", title="Home", icon="🏠", default=True)], "Stages": stage_pages}
sections["LoRA Kitchen"].append(st.Page("views/experiments.py", title="Experiments", icon="🧪",
                                        url_path="experiments"))
if class_page.visibility == "visible":
    sections["Instructor"] = [class_page]
else:
    sections["LoRA Kitchen"].append(class_page)
sections["Try it"] = [st.Page("views/chat.py", title="Chat", icon="💬", url_path="chat")]
navigation = st.navigation(sections)
navigation.run()
