"""Search the gallery by text or by an uploaded image; any result can seed "more like this"."""

import streamlit as st

from streamlit_ui import client
from streamlit_ui.components import (
    GRID_PIXELS,
    LARGE_PIXELS,
    call,
    image,
    image_grid,
    image_types,
    require_ready,
    show_image,
)

# Attribute queries first: search sees colour, scene and light, not only the class.
EXAMPLES = [
    "a red sports car",
    "a white ship at sea",
    "a deer in a meadow",
    "a dark photo of a cat",
    "a photo of a cat",
]


def more_like(item: dict) -> None:
    # The whole result, so the page shows it from the image_url the API gave.
    st.session_state["search_similar"] = item


def back_to_search() -> None:
    del st.session_state["search_similar"]


def use_example() -> None:
    st.session_state["search_query"] = st.session_state["search_example"] or ""


def nothing_found(min_score: float, similar: bool) -> str:
    """Why a search came back empty: every score is at least -1, so at -1 nothing is filtered."""
    if min_score > -1:
        return f"No image scores above the minimum score of {min_score:.2f}: lower it to see more."
    if similar:
        return "The gallery holds no other image to compare with."
    return "The gallery is empty: see the Model page for how to give the API a dataset, or add images on Gallery."


st.title("Search the gallery")
require_ready()
left, right = st.columns(2)
top_k = left.slider("Results", 1, 50, 15, key="search_top_k")
# Scores are cosine similarities, so a floor hides weak matches; -1 keeps everything.
min_score = right.slider("Minimum score", -1.0, 1.0, -1.0, 0.05, key="search_min_score")
# A share of the best result's score adapts to each query, where one absolute floor does not; 0 is off.
relative = left.slider("Keep results within this share of the best score", 0.0, 1.0, 0.0, 0.01, key="search_relative")
negative = right.text_input("But not (optional)", key="search_negative", placeholder="grass").strip()
options = {
    "top_k": top_k,
    "min_score": min_score,
    **({"min_relative_score": relative} if relative > 0 else {}),
    **({"negative": negative} if negative else {}),
}

similar = st.session_state.get("search_similar")
if similar:
    st.subheader(f"More like `{similar['id']}`")
    # The stored image: an upload's photo as it was given, a dataset image's 32x32 enlarged.
    show_image(call("Loading image…", image, similar["image_url"]), LARGE_PIXELS)
    st.button("Back to search", key="search_back", on_click=back_to_search, icon=":material/arrow_back:")
    refine = st.text_input("Refine with words (optional)", key="search_refine_similar", placeholder="but red")
    results = call("Finding similar images…", client.search_similar, similar["id"], options, refine.strip() or None)
elif st.radio("Search by", ["Text", "Image"], horizontal=True, key="search_by") == "Text":
    st.pills("Examples", EXAMPLES, key="search_example", on_change=use_example)
    query = st.text_input("Describe what you are looking for", key="search_query").strip()
    if not query:
        st.info("Type a description or pick an example.")
        st.stop()
    results = call("Searching…", client.search_text, query, options)
else:
    file = st.file_uploader("Find images like this one", type=image_types(), key="search_upload")
    if not file:
        st.info("Upload an image to find similar ones.")
        st.stop()
    show_image(file.getvalue(), GRID_PIXELS)
    refine = st.text_input("Refine with words (optional)", key="search_refine_image", placeholder="but red")
    upload = (file.name, file.getvalue())
    results = call("Searching…", client.search_image, upload, options, refine.strip() or None)

if not results:
    st.warning(nothing_found(min_score, similar is not None))
    st.stop()
image_grid(results, key="search_more", action=("More like this", more_like))
