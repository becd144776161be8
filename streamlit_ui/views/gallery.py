"""Browse the gallery page by page; with the API key, add your own images or delete them."""

import math

import streamlit as st

from streamlit_ui import client
from streamlit_ui.components import call, image_grid, image_types, info

PAGE_SIZE = 20
SOURCES = {"all": "Everything", "dataset": "CIFAR-10 test set", "user": "Your uploads"}


def request_delete(item: dict) -> None:
    # Done in the script body, not here, so a failure can be shown with the page's error handling.
    st.session_state["gallery_delete"] = item["id"]


st.title("Gallery")
api_key = st.sidebar.text_input("API key (to add or delete images)", type="password", key="api_key")

if pending := st.session_state.pop("gallery_delete", None):
    call("Deleting…", client.delete_image, pending, api_key)
    st.toast(f"Deleted `{pending}`.", icon=":material/delete:")

model = call("Reading the model card…", info)
with st.expander("Add an image", icon=":material/add_photo_alternate:", expanded=False):
    with st.form("gallery_add", clear_on_submit=True):
        file = st.file_uploader("Image", type=image_types(), key="gallery_add_file")
        caption = st.text_input("Caption (optional, makes it findable by its words)", key="gallery_add_caption")
        label = st.selectbox("Class (optional)", ["", *model["classes"]], key="gallery_add_label")
        submitted = st.form_submit_button("Add to gallery", disabled=not api_key)
    if not api_key:
        st.caption("Enter the API key in the sidebar to add images.")
    if submitted and not file:
        st.warning("Choose an image file first.")
    elif submitted:
        added = call("Adding…", client.add_image, (file.name, file.getvalue()), caption, label, api_key)
        st.success(f"Added as `{added['id']}`: search for it on the Search page.")

source = st.radio("Show", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="gallery_source")
page = st.number_input("Page", min_value=1, value=1, step=1, key="gallery_page")
listing = call("Loading the gallery…", client.gallery_page, (page - 1) * PAGE_SIZE, PAGE_SIZE, source)
pages = max(1, math.ceil(listing["total"] / PAGE_SIZE))
st.caption(f"Page {page} of {pages:,} · {listing['total']:,} images")
if not listing["items"]:
    st.info("Nothing on this page. An empty gallery means the API has no dataset: see the Model page.")
    st.stop()
# Only uploads can be deleted, so the button appears where only uploads are listed.
deletable = api_key and source == "user"
image_grid(listing["items"], key="gallery_item", action=("Delete", request_delete) if deletable else None)
