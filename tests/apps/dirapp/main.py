from bokeh.io import curdoc
from bokeh.models import Div

doc = curdoc()
greeting = getattr(doc.session_context, "greeting", "none")
doc.add_root(Div(text=f"greeting={greeting}", name="greeting"))
doc.template_variables["banner"] = "DIRAPP-BANNER"
doc.title = "dirapp"
