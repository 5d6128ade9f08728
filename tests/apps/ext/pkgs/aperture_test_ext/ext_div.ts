// The source of dist/aperture_test_ext.min.js: a Div whose view marks its element, so a test can
// see that the extension's own code (not BokehJS's Div) rendered it. Compiled with Bokeh's
// compiler: bokeh.util.compiler.bundle_models on a Div subclass carrying this as __implementation__.
import {Div, DivView} from "models/widgets/div"

export class ExtDivView extends DivView {
  declare model: ExtDiv
  override render(): void {
    super.render()
    this.el.dataset.extension = "aperture_test_ext"
  }
}
export namespace ExtDiv {
  export type Attrs = Div.Attrs
  export type Props = Div.Props
}
export interface ExtDiv extends ExtDiv.Attrs {}
export class ExtDiv extends Div {
  declare properties: ExtDiv.Props
  declare __view_type__: ExtDivView
  constructor(attrs?: Partial<ExtDiv.Attrs>) { super(attrs) }
  static override __module__ = "aperture_test_ext"
  static {
    this.prototype.default_view = ExtDivView
  }
}
