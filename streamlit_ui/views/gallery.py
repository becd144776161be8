"""Browse the gallery page by page; with the API key, add your own images or delete them."""

import math

import streamlit as st

from streamlit_ui import client
from streamlit_ui.components import call, image_grid, image_types, info, plural, require_ready

PAGE_SIZE = 20
SOURCES = {"all": "Everything", "dataset": "CIFAR-10 test set", "user": "Your uploads"}
WRITES_OFF = (
    "Adding images is off: the server has no `CLIP_API_KEY`; `make run` sets one and prints it. "
    "Started by hand, give the API one: `CLIP_API_KEY=<any secret> python -m model_api`."
)


def request_delete(item: dict) -> None:
    st.session_state["gallery_confirm_delete"] = item["id"]


def confirm_delete() -> None:
    # Deleted in the script body, not here, so a failure is shown with the page's error handling.
    st.session_state["gallery_delete"] = st.session_state.pop("gallery_confirm_delete")


def cancel_delete() -> None:
    st.session_state.pop("gallery_confirm_delete", None)


def add_form(api_key: str, classes: list[str]) -> None:
    """What was entered stays after a failed add and clears after a success. Clearing gives the
    widgets new keys: Streamlit cannot empty a file picker by setting its value."""
    form = st.session_state.setdefault("gallery_add_form", 0)
    with st.form(f"gallery_add-{form}"):
        file = st.file_uploader("Image", type=image_types(), key=f"gallery_add_file-{form}")
        caption = st.text_input("Caption (optional, makes it findable by its words)", key=f"gallery_add_caption-{form}")
        label = st.selectbox("Class (optional)", ["", *classes], key=f"gallery_add_label-{form}")
        submitted = st.form_submit_button("Add to gallery", disabled=not api_key)
    if not api_key:
        st.caption("Enter the API key in the sidebar to add images.")
    if not submitted:
        return
    if not file:
        st.warning("Choose an image file first.")
        return
    try:
        with st.spinner("Adding…"):
            added = client.add_image((file.name, file.getvalue()), caption, label, api_key)
    except client.ApiError as error:  # shown, and the page goes on: the form keeps its input
        st.error(str(error), icon=":material/error:")
        return
    st.session_state["gallery_added"] = added["id"]
    st.session_state["gallery_add_form"] = form + 1
    st.rerun()


def near_duplicates() -> None:
    """Pairs above a similarity the person sets, each pair's two thumbnails side by side."""
    left, right = st.columns(2)
    minimum = left.slider("Minimum similarity", 0.80, 1.0, 0.95, 0.005, key="gallery_dup_min")
    limit = right.number_input("Most pairs", 1, 200, 20, key="gallery_dup_limit")
    if not st.button("Find near-duplicates", key="gallery_dup_find"):
        return
    pairs = call("Comparing every pair of images…", client.near_duplicates, minimum, int(limit))
    if not pairs:
        st.info(f"No two images are at least {minimum:.3f} alike: lower the minimum to see more.")
    for pair in pairs:
        st.caption(f"Similarity {pair['similarity']:.3f}")
        image_grid([pair["first"], pair["second"]], key=f"gallery_dup-{pair['first']['id']}", columns=5)


st.title("Gallery")
require_ready()
model = call("Reading the model card…", info)
writes = model["writes_enabled"]
api_key = st.sidebar.text_input("API key (to add or delete images)", type="password", key="api_key") if writes else ""

if pending := st.session_state.pop("gallery_delete", None):
    call("Deleting…", client.delete_image, pending, api_key)
    st.toast(f"Deleted `{pending}`.", icon=":material/delete:")

with st.expander("Add an image", icon=":material/add_photo_alternate:", expanded=False):
    if added := st.session_state.pop("gallery_added", None):
        st.success(f"Added as `{added}`: search for it on the Search page.")
    if writes:
        add_form(api_key, model["classes"])
    else:
        st.info(WRITES_OFF, icon=":material/lock:")

with st.expander("Near-duplicates", icon=":material/content_copy:", expanded=False):
    near_duplicates()

# "Everything" lists uploads first, newest first (the API's order), so a new upload is on page 1.
source = st.radio("Show", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="gallery_source")
page = st.number_input("Page", min_value=1, value=1, step=1, key="gallery_page")
listing = call("Loading the gallery…", client.gallery_page, (page - 1) * PAGE_SIZE, PAGE_SIZE, source)
pages = max(1, math.ceil(listing["total"] / PAGE_SIZE))
st.caption(f"Page {page} of {pages:,} · {plural(listing['total'], 'image')}")
if not listing["items"]:
    st.info("Nothing on this page. An empty gallery means the API has no dataset: see the Model page.")
    st.stop()
if confirming := st.session_state.get("gallery_confirm_delete"):
    st.warning(f"Delete `{confirming}` from the gallery? This cannot be undone.", icon=":material/delete:")
    yes, no = st.columns([1, 8])
    yes.button("Delete", key="gallery_delete_yes", type="primary", on_click=confirm_delete)
    no.button("Cancel", key="gallery_delete_no", on_click=cancel_delete)
# Only uploads can be deleted, so the button appears where only uploads are listed.
deletable = api_key and source == "user"
image_grid(listing["items"], key="gallery_item", action=("Delete", request_delete) if deletable else None)
