from __future__ import annotations

import pytest

from keypoint_instruct.dataset import quality


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("His left wrist is at 0.42 of the image width.", quality.COORDINATE_LEAKAGE),
        ("The elbow is near .375 horizontally.", quality.COORDINATE_LEAKAGE),
        ("The box [12, 40, 200, 310] covers him.", quality.COORDINATE_LEAKAGE),
        ("According to the captions, he is skiing.", quality.NAMES_SOURCE),
        ("The bounding box shows a person on the left.", quality.NAMES_SOURCE),
        ("His keypoints show bent knees.", quality.NAMES_SOURCE),
        ("Judging by the coordinates, she is crouching.", quality.NAMES_SOURCE),
        ("I'm sorry, but I cannot see the image.", quality.REFUSAL),
        ("I\u2019m sorry, I can\u2019t tell.", quality.REFUSAL),
        ("As an AI, I have no eyes.", quality.REFUSAL),
        ("Whether he is tired cannot be determined.", quality.REFUSAL),
        # forms that got through: a hyphenated "key-points", a visibility value, the singular "description"
        ("The key-points show a deep squat.", quality.NAMES_SOURCE),
        ("Her right ankle key-point is hidden.", quality.NAMES_SOURCE),
        ("His left ankle is occluded (v=1).", quality.COORDINATE_LEAKAGE),
        ("Both wrists have v = 2, so they are in view.", quality.COORDINATE_LEAKAGE),
        ("In the provided description, the man jumps.", quality.NAMES_SOURCE),
        ("The image description mentions a frisbee.", quality.NAMES_SOURCE),
        ("Coordinates indicate a lean to the left.", quality.NAMES_SOURCE),
        ("His joint coordinates place the wrists above the head.", quality.NAMES_SOURCE),
        ("The pose data shows a lunge.", quality.LEAK_SKELETON),
        ("The skeleton data suggests she is sitting.", quality.LEAK_SKELETON),
    ],
)
def test_answers_dropped_with_reason(answer, reason):
    assert quality.pair_reason("What is he doing?", answer) == reason


@pytest.mark.parametrize(
    "answer",
    [
        "He is skiing downhill with his knees bent at about a right angle.",
        "Two players are jumping for the ball, arms raised.",
        "She holds a 1.5 metre pole.",  # a measurement, not a normalised coordinate
        "The boy is 10 years old and runs (fast).",
        "A detailed description of his stance: feet apart, knees soft.",
        "The V-shaped arms show joy.",
        "He coordinates his arms and legs while swimming.",
        "She holds a map with coordinates for the hike.",
    ],
)
def test_clean_answers_kept(answer):
    assert quality.pair_reason("What is happening?", answer) is None


def test_question_naming_the_source_is_dropped_but_question_refusal_words_are_not_checked():
    assert quality.pair_reason("What does the caption say?", "He is surfing.") == quality.NAMES_SOURCE
    assert quality.pair_reason("Why can't he reach the ball?", "His arm is too short.") is None
    assert quality.pair_reason(None, "The caption says so.") == quality.NAMES_SOURCE


def test_truncation_is_a_response_reason():
    assert quality.response_reason("length") == quality.TRUNCATED
    assert quality.response_reason("stop") is None
    assert quality.response_reason("content_filter") == quality.CONTENT_FILTER


def test_a_provider_refusal_is_a_response_reason():
    """OpenAI's refusal field (content null) is stored as its text with finish_reason ``refusal`` by the teacher:
    the whole response is a refusal, whatever its words."""
    assert quality.response_reason("refusal") == quality.REFUSAL
    assert "finish_reason `refusal`" in quality.REASON_DESCRIPTIONS[quality.REFUSAL]


def test_question_normalisation():
    assert quality.normalize_question("What is he doing?") == quality.normalize_question("  what is HE doing ")
    assert quality.normalize_question("What is he doing?") != quality.normalize_question("What is she doing?")


def test_every_reason_is_described():
    assert set(quality.REASON_DESCRIPTIONS) == set(quality.REASONS)


# Replies written the way GPT-4o answers the paper's prompts. Numbers that describe the scene (counts, ages, a
# 3-point shot, a 50/50 grind, a score) and hedges are kept; numbers and wording taken from the input are not.
REALISTIC_KEPT = [
    "In the image, the person is crouching low on the skateboard with both arms stretched out for balance.",
    "Two people are standing on the tennis court; the one on the left is about to serve, racket raised behind her.",
    "The boy looks about 10 years old and is running toward the goal with his arms swinging.",
    "The player is going up for a 3-point shot: his knees are bent and both hands push the ball above his head.",
    "She is probably around 1.75 meters tall, judging by how she stands next to the door.",
    "Three skiers are in line; the second one has both poles planted and leans forward.",
    "The batter holds the bat at roughly a 45-degree angle over his right shoulder.",
    "Although I cannot be certain from this view, he seems to be about to throw the frisbee.",
    "The two dancers coordinate their movements closely, each mirroring the other's raised arm.",
    "It is around 3:30 in the afternoon, and the score looks like 15-30 in the second set.",
    "The skater is doing a 50/50 grind along the rail, with her weight over her front foot.",
    "Her posture (knees bent, back straight) shows she is ready to spring forward.",
    "He wears the number 23 jersey and is reaching up with his right arm for the rebound.",
    "The man in the middle of the group is the only one sitting; the other 4 stand around him.",
    "It's hard to say exactly what she is looking at, but her head is turned toward the dog.",
]
REALISTIC_DROPPED = [
    ("Based on the keypoints, the man's knees are bent and he is about to jump.", quality.NAMES_SOURCE),
    ("The person's left wrist is located at (0.42, 0.31), which means it is raised.", quality.COORDINATE_LEAKAGE),
    ("His right knee (x=0.5) is lower than his hip.", quality.COORDINATE_LEAKAGE),
    ("The man's nose is at (245, 130) and his wrist at (300, 210).", quality.COORDINATE_LEAKAGE),
    ("The skier occupies [0.1, 0.2, 0.5, 0.9] of the frame.", quality.COORDINATE_LEAKAGE),
    ("Judging from the provided bounding box, the woman is on the left.", quality.NAMES_SOURCE),
    ("Based on the descriptions provided, the skier is going downhill.", quality.NAMES_SOURCE),
    ("From the data provided, the skier appears to be turning left.", quality.NAMES_SOURCE),
    ("According to the five sentences, two people are skiing.", quality.NAMES_SOURCE),
    ("The visibility flags indicate that his right ankle is hidden behind the board.", quality.LEAK_VISIBILITY),
    ("Her left ankle is labeled but not visible, so the bench probably hides it.", quality.LEAK_VISIBILITY),
    ("The annotated person on the right has a bent elbow.", quality.NAMES_SOURCE),
    ("The x-coordinate of his right hand is greater than that of his left hand.", quality.NAMES_SOURCE),
    ("I'm sorry, but I can't determine what the person is doing.", quality.REFUSAL),
    ("As an AI language model, I cannot see the image.", quality.REFUSAL),
    ("There is not enough information to tell whether they are friends.", quality.REFUSAL),
]


@pytest.mark.parametrize("answer", REALISTIC_KEPT)
def test_realistic_teacher_answers_are_kept(answer):
    assert quality.pair_reason("What is happening in the image?", answer) is None


@pytest.mark.parametrize(("answer", "reason"), REALISTIC_DROPPED)
def test_realistic_teacher_leaks_and_refusals_are_dropped(answer, reason):
    assert quality.pair_reason("What is happening in the image?", answer) == reason


# --- issue 12: leaks of what the teacher saw, and no false drops of ordinary numbers, words and hedges ----------

LEAKS = [
    ("His left elbow is bent at about 110 degrees as he swings.", quality.LEAK_ANGLE),
    ("She leans 20\u00b0 to her left while stretching.", quality.LEAK_ANGLE),
    ("The torso is tilted roughly 30 degrees from vertical.", quality.LEAK_ANGLE),
    ("His knees are bent to 90 and 100 degrees.", quality.LEAK_ANGLE),
    ("A 40-degree forward lean shows that he pushes hard.", quality.LEAK_ANGLE),
    ("He turns his upper body about 30 degrees toward the net.", quality.LEAK_ANGLE),  # 30 is no turn of a trick
    ("Both elbows are straight at about 180 degrees, so the arms are locked.", quality.LEAK_ANGLE),
    ("The pose notes describe her as crouching.", quality.LEAK_NOTES),
    ("According to the notes, both players are standing.", quality.LEAK_NOTES),
    ("The notes list the man as facing the camera.", quality.LEAK_NOTES),
    ("The note for this woman says she is sitting.", quality.LEAK_NOTES),
    ("The skeleton shows both wrists above the head.", quality.LEAK_SKELETON),
    ("Only the upper-body joints are given, so the legs cannot be described.", quality.LEAK_SKELETON),
    ("His face is not among the marked joints.", quality.LEAK_SKELETON),
    ("Her left hip is labelled but occluded, hidden behind the bench.", quality.LEAK_VISIBILITY),
    ("His right ankle has visibility 0, so the foot is out of view.", quality.LEAK_VISIBILITY),
    ("Every body part has a visibility of 2.", quality.LEAK_VISIBILITY),
    ("His knees are marked as hidden behind the table.", quality.LEAK_VISIBILITY),
    ("Her ankles are unlabelled, so her feet are out of the frame.", quality.LEAK_VISIBILITY),
    ("Person 3 is the tallest of the group.", quality.LEAK_PERSON_LABEL),
    ("The umpire (person 2) bends forward.", quality.LEAK_PERSON_LABEL),
    ("Persons 1 and 2 stand side by side.", quality.LEAK_PERSON_LABEL),
    ("The text says she is holding an umbrella.", quality.NAMES_SOURCE),
    ("As the description mentions, the man is skiing.", quality.NAMES_SOURCE),
    ("As described in the sentences, he is waiting for a bus.", quality.NAMES_SOURCE),
    ("The first sentence describes a busy market.", quality.NAMES_SOURCE),
    ("Her key points show a deep squat.", quality.NAMES_SOURCE),
    ("She is at about 0.41, 0.25 in the frame.", quality.COORDINATE_LEAKAGE),
    ("His head is near x = 0.17 on the left.", quality.COORDINATE_LEAKAGE),
    ("The ball sits at about .312 of the image width.", quality.COORDINATE_LEAKAGE),
]

ORDINARY = [
    "It was about 30 degrees outside, so everyone on the beach wore shorts.",
    "The oven is set to 180 degrees while she kneads the dough.",
    "The skateboarder lands a 360-degree spin at the top of the ramp.",
    "He does a 180 degree turn on his board and rolls back down.",
    "The ramp rises at a 30-degree angle toward the rail.",
    "The batter holds the bat at roughly a 45-degree angle over his right shoulder.",
    "She bends her front knee to about a right angle, and from this angle her back foot is hidden.",
    "He wears number 23, and the scoreboard shows 3-1 with 12:45 left on the clock.",
    "A .300 hitter is considered excellent, and he has a .285 average this season.",
    "His batting average is .312 going into the final game.",
    "The drink costs 0.75 at the stand by the gate.",
    "A fastball takes about 0.45 seconds to reach the plate, and the race is 0.25 miles long.",
    "Studies put conversation distance at 0.5 to 1.2 metres.",
    "A person 2 metres away watches him juggle.",
    "The notes on the piano ring out as she plays with her arms spread wide.",
    "She is taking notes during the lecture, her head bent over the desk.",
    "A child dressed as a skeleton waves at the camera.",
    "He wears a skeleton costume and stands with his hands on his hips.",
    "The key moment is captured just as the ball leaves his hand; one key point is to keep the back straight.",
    "Her visibility is limited by the fog, so she walks slowly with her arms out.",
    "The text on his shirt reads 'Coach', and this fits the description of a classic tennis serve.",
    "Unfortunately, he missed the ball and it rolled away behind him.",
    "The man seems to be about 6 feet tall and around 40 years old.",
    "Her wrist joints and shoulders carry her weight, which gives the joints a workout.",
    "Players coordinate their runs; his position on the pitch is the point of the drill.",
]

HEDGES = [
    "It cannot be determined exactly how far into the race they are, but the runners are bunched together, so "
    "it is probably early on.",
    "It is impossible to determine its exact path from a single frame, but the ball is right in front of his face.",
    "I can't see her feet clearly, but she seems to be standing on the bench.",
    "It cannot be determined from the picture what pitch has been called. What can be seen is where he wants it: "
    "he is crouched low with the glove held out in front of him.",
    "It isn't possible to be sure from a single photo, but the pose looks like a held balance.",
]

REFUSALS = [
    "I'm sorry, but the image does not show the score.",
    "I'm unable to view the image, but he is probably skiing.",
    "Unfortunately, I can't tell what she is holding.",
    "That isn't something I'm able to answer.",
    "It is not possible to predict what will happen next based on a single image.",
    "Predicting the next move is beyond what I can do from a still image.",
    "Sorry, I don't know.",
    "I don't have the ability to view images, so I can't describe her pose.",
]


@pytest.mark.parametrize(("answer", "reason"), LEAKS)
def test_leaks_of_the_inputs_are_dropped_with_their_reason(answer, reason):
    assert quality.pair_reason("What is happening in the image?", answer) == reason


@pytest.mark.parametrize("answer", ORDINARY + HEDGES)
def test_ordinary_numbers_words_and_hedges_are_kept(answer):
    assert quality.pair_reason("What is happening in the image?", answer) is None


@pytest.mark.parametrize("answer", REFUSALS)
def test_refusals_without_an_answer_are_dropped(answer):
    assert quality.pair_reason("What is happening in the image?", answer) == quality.REFUSAL


def test_a_hit_gives_the_offending_span():
    text = "She walks on. Her right knee is bent at about 110 degrees, and she smiles."
    hit = quality.text_hit(text)
    assert hit.reason == quality.LEAK_ANGLE and text[hit.start : hit.end] == "110 degrees"
    refusal = "Sorry, I don't know. Maybe."
    hit = quality.text_hit(refusal)
    assert hit.reason == quality.REFUSAL and refusal[hit.start : hit.end] == "Sorry, I don't know."


def _scene(captions, keypoints=None):
    from keypoint_instruct.coco.annotations import Instance, Scene

    person = Instance(1, "person", (100.0, 50.0, 120.0, 300.0), False, keypoints, 17 if keypoints else 0)
    return Scene(1, "x.jpg", "val2017", 640, 480, tuple(captions), (person,))


def test_person_labels_that_a_caption_uses_are_kept():
    scene = _scene(["Person 1 of the relay team hands over the baton."])
    assert quality.text_reason("Person 1 reaches back with his arm.", scene=scene) is None
    assert quality.text_reason("Person 2 reaches back with his arm.", scene=scene) == quality.LEAK_PERSON_LABEL
    assert quality.text_reason("Person 2 reaches back.", scene=_scene(["A relay race."])) == quality.LEAK_PERSON_LABEL


def test_a_number_the_scenes_notes_print_is_an_angle_even_in_object_wording():
    """An object's angle passes, unless the scene's pose notes give that very number (here an elbow at 90)."""
    # a standing figure facing the camera whose right elbow is bent at a right angle (forearm held level)
    kps = [320, 100, 2, 330, 92, 2, 310, 92, 2, 340, 96, 2, 300, 96, 2, 350, 140, 2, 290, 140, 2, 355, 200, 2]
    kps += [285, 200, 2, 360, 255, 2, 235, 200, 2, 340, 250, 2, 300, 250, 2, 342, 330, 2, 298, 330, 2]
    kps += [343, 410, 2, 297, 410, 2]
    scene = _scene(["A man holds a tray."], tuple(float(v) for v in kps))
    from keypoint_instruct.dataset.leaks import note_numbers

    assert 90 in note_numbers(scene)
    sentence = "The tray is held at a 90-degree angle to the ground."
    assert quality.text_reason(sentence) is None
    assert quality.text_reason(sentence, scene=scene) == quality.LEAK_ANGLE
    assert quality.text_reason("The tray is held at a 45-degree angle.", scene=scene) is None


def test_every_term_and_phrase_holds_a_trigger_of_its_reason():
    """The substring triggers spare the patterns on most answers; a term without one would never be looked for."""
    import json
    from importlib import resources

    raw = json.loads(resources.files("keypoint_instruct.dataset").joinpath("quality_filters.json").read_text())
    triggers = raw["triggers"]
    for reason, words in (("names_source", raw["source_terms"]), ("refusal", raw["refusal_phrases"])):
        for word in words:
            assert any(t in word.lower() for t in triggers[reason]), (reason, word)
    for answer, reason in LEAKS + REALISTIC_DROPPED:
        lowered = answer.lower().replace("\u2019", "'")
        assert any(t in lowered for t in triggers[reason]), (reason, answer)
